"""Review a dataset as the paper does by hand: edit a span's text, drop a trajectory with a
reason, restore it; every action recorded, every edited trajectory checked.

The page (`recipe/review_page.py`) and the file round trip (`export_files` / `apply_files`)
both go through `apply_changes`, so they behave the same:

- Only what the model wrote or was given as a hint can be edited (`model`, `tool_code`,
  `hint` spans). The prompt is what the model was asked, and a tool output is what the
  sandbox printed: change the code and the output is produced again.
- When an edit changes the code of a tool call, the code is run again in the sandbox
  (a `ToolRunner`: the sandbox service over gRPC) and its output span replaced, so the
  output stays true. Without a sandbox, or when the run fails, the trajectory is flagged
  (`stale output`) until a later save re-runs it; an export leaves flagged trajectories out.
- After every change the trajectory is checked (`check`): spans typed and non-empty,
  every tool output preceded by a closed python block, no python block left open, output
  blocks fenced. A failed check flags the trajectory, with the reason, for the reviewer.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from recipe.dataset import Dataset, Edit, review_of, set_review
from services.common.text_contract import (
    CLOSING_FENCE,
    OUTPUT_FENCE,
    PYTHON_FENCE,
    format_tool_output,
    last_closed_code_block,
    open_code_block,
    truncate_output,
)
from training.data import Sample, Span

EDITABLE = frozenset({"model", "tool_code", "hint"})
STALE = "stale output"

# Runs python code in the sandbox and returns what the model would see of it.
ToolRunner = Callable[[str], str]


class Change(BaseModel):
    """One reviewer action, as the page posts it and the file round trip produces it."""

    model_config = ConfigDict(extra="forbid")
    trajectory_id: str
    action: Literal["edit", "drop", "restore"]
    span: int | None = None
    text: str | None = None
    reason: str = ""


class ReviewError(ValueError):
    """A change that cannot be applied; the message says what to fix."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def span_diff(before: str, after: str, label: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"{label} (before)", tofile=f"{label} (after)",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def closed_block_before(text: str) -> str | None:
    """The code of the python block that text ends by closing: exactly one closing fence
    after the last opening one, at the very end (a doubled fence is not a closed block)."""
    start = text.rfind(PYTHON_FENCE)
    body = text[start + len(PYTHON_FENCE) :].rstrip() if start >= 0 else ""
    if start < 0 or not body.endswith(CLOSING_FENCE) or body.count(CLOSING_FENCE) != 1:
        return None
    return last_closed_code_block(text)


def tool_calls(sample: Sample) -> list[tuple[int, str | None]]:
    """(index of each tool-output span, the code of the block it answers, None when not closed)."""
    calls, text = [], ""
    for index, span in enumerate(sample.spans):
        if span.type == "tool_output":
            calls.append((index, closed_block_before(text)))
        text += span.text
    return calls


def check(sample: Sample) -> list[str]:
    """What is wrong with a trajectory's structure, in words a reviewer can act on."""
    problems = []
    spans = sample.spans
    for index, span in enumerate(spans):
        if not span.text:
            problems.append(f"span {index} ({span.type}) is empty")
    for index, code in tool_calls(sample):
        if code is None:
            problems.append(f"tool output in span {index} does not follow a closed ```python block")
        text = spans[index].text
        if not (text.startswith(f"\n{OUTPUT_FENCE}\n") and text.endswith(CLOSING_FENCE + "\n")):
            problems.append(f"tool output in span {index} is not a fenced ```output block")
    whole = "".join(s.text for s in spans)
    if open_code_block(whole) is not None:
        problems.append("a ```python block is left open")
    if not any(s.type in ("model", "tool_code") and s.text for s in spans):
        problems.append("no model text left to train on")
    return problems


def _record(dataset: Dataset, edit: Edit) -> Edit:
    dataset.edits.append(edit)
    return edit


def editable_span(sample: Sample, index: int) -> Span:
    """The span an edit may change; ReviewError says why not otherwise."""
    if not 0 <= index < len(sample.spans):
        raise ReviewError(f"{sample.id} has spans 0..{len(sample.spans) - 1}; there is no span {index}")
    span = sample.spans[index]
    if span.type not in EDITABLE:
        why = ("the prompt is what the model was asked" if span.type == "prompt"
               else "a tool output is what the sandbox printed: edit the code and it is run again")
        raise ReviewError(f"{sample.id} span {index} is a {span.type} span and cannot be edited: {why}")
    return span


def edit_span(dataset: Dataset, trajectory_id: str, index: int, text: str, by: str = "") -> Edit | None:
    """Replace one span's text; None when it is unchanged."""
    sample = dataset.get(trajectory_id)
    span = editable_span(sample, index)
    if text == span.text:
        return None
    before_calls = dict(tool_calls(sample))
    diff = span_diff(span.text, text, f"{trajectory_id} span {index} ({span.type})")
    span.text = text
    review = review_of(sample)
    review.edited = True
    changed = [i for i, code in tool_calls(sample) if code != before_calls.get(i)]
    review.flags = sorted(set(review.flags) | {f"{STALE}: span {i}" for i in changed})
    set_review(sample, review)
    return _record(dataset, Edit(at=now(), by=by, trajectory_id=trajectory_id, action="edit", span=index,
                                 span_type=span.type, diff=diff))


def drop(dataset: Dataset, trajectory_id: str, reason: str, by: str = "") -> Edit:
    sample = dataset.get(trajectory_id)
    if not reason.strip():
        raise ReviewError(f"dropping {trajectory_id} needs a reason (it goes in the dataset card)")
    review = review_of(sample)
    review.status, review.reason = "dropped", reason.strip()
    set_review(sample, review)
    return _record(dataset, Edit(at=now(), by=by, trajectory_id=trajectory_id, action="drop", reason=reason.strip()))


def restore(dataset: Dataset, trajectory_id: str, by: str = "") -> Edit:
    sample = dataset.get(trajectory_id)
    review = review_of(sample)
    review.status, review.reason = "kept", ""
    set_review(sample, review)
    return _record(dataset, Edit(at=now(), by=by, trajectory_id=trajectory_id, action="restore"))


def default_max_tool_output_chars() -> int:
    """The front door's default tool-output cap (its setting's default), for a
    trajectory that does not record what its episode ran with."""
    from services.orchestrator.server import Settings

    return Settings.model_fields["default_max_tool_output_chars"].default


def rerun_stale_outputs(dataset: Dataset, sample: Sample, runner: ToolRunner | None, by: str = "") -> None:
    """Run again the code of every tool call an edit changed; a call that cannot be run stays flagged."""
    review = review_of(sample)
    stale = {f for f in review.flags if f.startswith(STALE)}
    if not stale or runner is None:
        return
    codes = dict(tool_calls(sample))
    max_chars = int(sample.meta.get("max_tool_output_chars") or default_max_tool_output_chars())
    for flag in sorted(stale):
        index = int(flag.rsplit(" ", 1)[1])
        code = codes.get(index)
        if code is None:
            continue  # check() says why: the block before it is not closed
        try:
            output = format_tool_output(truncate_output(runner(code), max_chars))
        except Exception as exc:  # noqa: BLE001 - any failure leaves the flag, with its reason, for the reviewer
            review.flags = sorted({*review.flags, f"{STALE}: span {index}", f"re-run failed: {exc}"[:300]})
            continue
        span = sample.spans[index]
        diff = span_diff(span.text, output, f"{sample.id} span {index} (tool_output)")
        span.text = output
        review.flags = sorted(f for f in review.flags if f != flag and not f.startswith("re-run failed"))
        if diff:
            _record(dataset, Edit(at=now(), by=by, trajectory_id=sample.id, action="rerun", span=index,
                                  span_type="tool_output", diff=diff, reason="tool code changed; run again"))
    set_review(sample, review)


def recheck(sample: Sample) -> None:
    """Replace the structural flags of a trajectory with what `check` finds now."""
    review = review_of(sample)
    review.flags = sorted({f for f in review.flags if f.startswith((STALE, "re-run failed"))} | set(check(sample)))
    set_review(sample, review)


def apply_changes(dataset: Dataset, changes: Iterable[Change], by: str = "",
                  runner: ToolRunner | None = None) -> list[Edit]:
    """Apply a reviewer's changes in order, re-run changed tool code, check what changed.
    All or nothing: a change that cannot be applied raises before the dataset is touched."""
    changes = list(changes)
    for change in changes:
        dataset.get(change.trajectory_id)  # unknown ids fail before anything changes
        if change.action == "edit" and (change.span is None or change.text is None):
            raise ReviewError(f"an edit of {change.trajectory_id} needs a span index and its new text")
        if change.action == "drop" and not change.reason.strip():
            raise ReviewError(f"dropping {change.trajectory_id} needs a reason (it goes in the dataset card)")
        if change.action == "edit":
            editable_span(dataset.get(change.trajectory_id), change.span)  # type: ignore[arg-type]
    start = len(dataset.edits)
    touched: dict[str, Sample] = {}
    for change in changes:
        if change.action == "edit":
            edit_span(dataset, change.trajectory_id, change.span, change.text, by)  # type: ignore[arg-type]
        elif change.action == "drop":
            drop(dataset, change.trajectory_id, change.reason, by)
        else:
            restore(dataset, change.trajectory_id, by)
        touched[change.trajectory_id] = dataset.get(change.trajectory_id)
    # A save also retries earlier edits whose outputs could not be re-run then.
    touched.update({s.id: s for s in dataset.trajectories if any(f.startswith(STALE) for f in review_of(s).flags)})
    for sample in touched.values():
        rerun_stale_outputs(dataset, sample, runner, by)
        recheck(sample)
    return dataset.edits[start:]


# -- the file round trip ------------------------------------------------------------------

MARKER = "@@@@"
_MARKER_LINE = re.compile(r"^@@@@ span (\d+) (\w+)(?: \(read-only\))? @@@@$")
_END = f"{MARKER} end {MARKER}"


def file_name(index: int, trajectory_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", trajectory_id)
    return f"{index:05d}-{safe}.txt"


def render_file(sample: Sample) -> str:
    """One trajectory as a text file a person edits in any editor."""
    review = review_of(sample)
    meta = sample.meta
    lines = [
        f"# trajectory {sample.id}",
        f"# problem {meta.get('problem_id')} | source {meta.get('source')} | task {meta.get('task_type')}"
        f" | tool calls {meta.get('tool_calls')} | reference {meta.get('reference')!r}",
        "# Edit the text between the markers of model, tool_code and hint spans; leave the markers as they are.",
        "# To drop the trajectory write a reason after 'drop:'; to restore a dropped one, empty it.",
        *(f"# flag: {flag}" for flag in review.flags),
        f"drop: {review.reason if review.status == 'dropped' else ''}",
    ]
    for index, span in enumerate(sample.spans):
        if MARKER in span.text:
            raise ReviewError(f"{sample.id} span {index} contains {MARKER!r}; edit it in the page instead")
        read_only = "" if span.type in EDITABLE else " (read-only)"
        lines.append(f"{MARKER} span {index} {span.type}{read_only} {MARKER}")
        lines.append(span.text)
    lines.append(_END)
    return "\n".join(lines) + "\n"


def parse_file(text: str, name: str) -> tuple[str, str, list[tuple[int, str, str]]]:
    """(trajectory id, drop reason, [(span index, type, text)]) of a file `render_file` wrote."""
    lines = text.split("\n")
    if not lines[0].startswith("# trajectory "):
        raise ReviewError(f"{name}: the first line must be '# trajectory ID' as exported")
    trajectory_id = lines[0].removeprefix("# trajectory ").strip()
    reason, spans, current, body = "", [], None, []
    for lineno, line in enumerate(lines[1:], 2):
        match = _MARKER_LINE.match(line)
        if match or line == _END:
            if current is not None:
                spans.append((*current, "\n".join(body)))
            if line == _END:
                return trajectory_id, reason, spans
            current, body = (int(match.group(1)), match.group(2)), []  # type: ignore[union-attr]
        elif current is not None:
            body.append(line)
        elif line.startswith("drop:"):
            reason = line.removeprefix("drop:").strip()
        elif line.startswith(MARKER):
            raise ReviewError(f"{name}:{lineno}: a marker line was changed: {line!r}")
    raise ReviewError(f"{name}: the end marker '{_END}' is missing")


def export_files(dataset: Dataset, folder: str | Path) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, sample in enumerate(dataset.trajectories):
        path = folder / file_name(index, sample.id)
        path.write_text(render_file(sample))
        written.append(path)
    return written


def changes_from_files(dataset: Dataset, folder: str | Path) -> list[Change]:
    """The changes a person made to exported files, checked against the dataset."""
    changes: list[Change] = []
    paths = sorted(Path(folder).glob("*.txt"))
    if not paths:
        raise ReviewError(f"{folder}: no exported trajectories (*.txt); run `review --export {folder}` first")
    for path in paths:
        trajectory_id, reason, spans = parse_file(path.read_text(), path.name)
        try:
            sample = dataset.get(trajectory_id)
        except KeyError as exc:
            raise ReviewError(f"{path.name}: {exc.args[0]}") from None
        if [(i, t) for i, t, _ in spans] != [(i, s.type) for i, s in enumerate(sample.spans)]:
            raise ReviewError(f"{path.name}: spans were added, removed or retyped; only their text may change")
        for index, _, text in spans:
            if text != sample.spans[index].text:
                changes.append(Change(trajectory_id=trajectory_id, action="edit", span=index, text=text))
        status = review_of(sample).status
        if reason and (status == "kept" or reason != review_of(sample).reason):
            changes.append(Change(trajectory_id=trajectory_id, action="drop", reason=reason))
        elif not reason and status == "dropped":
            changes.append(Change(trajectory_id=trajectory_id, action="restore"))
    return changes


def sandbox_runner(addr: str, timeout_s: float = 30.0) -> ToolRunner:
    """Run code in the sandbox service as an episode's tool call is run (same rendering of
    the result: services/orchestrator/steps.py `tool_output`)."""
    import grpc

    from services.common.channels import channel
    from services.orchestrator.steps import tool_output
    from start.v1 import sandbox_pb2, sandbox_pb2_grpc

    stub = sandbox_pb2_grpc.SandboxServiceStub(channel(addr))

    def run(code: str) -> str:
        try:
            reply = stub.Execute(sandbox_pb2.ExecuteRequest(code=code, language="python"), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise RuntimeError(f"sandbox at {addr}: {exc.code().name} {exc.details()}") from None
        return tool_output(reply)

    return run

