"""The text contract: the exact strings a model reads and writes around its thinking and its tool calls.

A model is trained on these strings and the platform must give them back byte for byte
when it runs the model: the think markers, the python fence that opens a tool call and
the fence that closes it, the output block the platform appends with what the code
printed, and the markers that say an output was cut. They live here alone; the services
(episode text, hint policy and library, sandbox, scoring), training and the micro
model's corpus writer all import them, so a change here is a change for all of them,
and one that means retraining the micro model (models/start-micro), which learnt them.

Plain strings and string functions, no other imports: the micro-model builder and the
graders use them without the platform's protos.
"""

from __future__ import annotations

START_THINK = "<think>"
END_THINK = "</think>"
PYTHON_FENCE = "```python"  # the model opens a tool call with it (a hint may write it for the model)
CLOSING_FENCE = "```"  # closes a tool call, and the output block
OUTPUT_FENCE = "```output"  # opens the block the platform appends with what the code printed
# Where the episode cuts a tool's output at its `max_tool_output_chars` (the orchestrator).
TRUNCATION_MARKER = "\n... [output truncated]"
# Where the sandbox cuts a program's stdout or stderr at its byte cap ({limit}: the cap).
SANDBOX_TRUNCATION_MARKER = "\n[... output truncated: limit of {limit} bytes reached]\n"


def open_code_block(text: str) -> str | None:
    """The code of a python block opened at the end of text and not yet closed, else None."""
    start = text.rfind(PYTHON_FENCE)
    if start < 0:
        return None
    body = text[start + len(PYTHON_FENCE) :]
    if CLOSING_FENCE in body:
        return None
    return body


def last_closed_code_block(text: str) -> str | None:
    """The code of the last complete python block in text, else None."""
    start = text.rfind(PYTHON_FENCE)
    if start < 0:
        return None
    body = text[start + len(PYTHON_FENCE) :]
    end = body.find(CLOSING_FENCE)
    return None if end < 0 else body[:end].strip("\n")


def truncate_output(output: str, max_chars: int) -> str:
    """A tool's output cut at max_chars (0: no limit), marked where it was cut."""
    if max_chars <= 0 or len(output) <= max_chars:
        return output
    return output[:max_chars] + TRUNCATION_MARKER


def sandbox_truncation_marker(limit_bytes: int) -> str:
    """What the sandbox appends to a stream it cut at its byte cap."""
    return SANDBOX_TRUNCATION_MARKER.format(limit=limit_bytes)


def format_tool_output(output: str) -> str:
    """The fenced block the platform appends after a tool call (the model was trained on it)."""
    body = output if output.endswith("\n") or not output else output + "\n"
    return f"\n{OUTPUT_FENCE}\n{body}{CLOSING_FENCE}\n"
