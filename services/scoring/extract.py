"""Find the answer a response commits to: the part after the thinking, the last box, the
chosen letter, the final python block.

Everything here is linear in the response (huge responses are graded too) and pure
string work, so the graders and the code path share one notion of "the final answer".
"""

from __future__ import annotations

import re

THINK_END = "</think>"
_BOX_COMMANDS = ("\\boxed", "\\fbox")


def final_answer(response: str) -> str:
    """The text after the last end-of-thinking token, or the whole response without one."""
    head, sep, tail = response.rpartition(THINK_END)
    return tail if sep else response


def _matching_brace(text: str, open_at: int) -> int:
    """Index of the `}` closing the `{` at open_at, or -1 when it is never closed."""
    depth = 0
    # Jump from brace to brace with a regex instead of walking every character: a box
    # around a 5,000-digit number costs a handful of steps.
    for match in re.compile(r"(?<!\\)[{}]").finditer(text, open_at):
        depth += 1 if match.group() == "{" else -1
        if depth == 0:
            return match.start()
    return -1


def last_boxed(text: str) -> str | None:
    r"""Content of the last `\boxed{...}` (or `\fbox{...}`); None when absent or unclosed.

    An unclosed last box is no answer, even if an earlier box closed: the response's final
    commitment is what is graded, not a guess at what it meant.
    """
    start = max(text.rfind(command) for command in _BOX_COMMANDS)
    while start >= 0:
        command = next(c for c in _BOX_COMMANDS if text.startswith(c, start))
        after = start + len(command)
        while after < len(text) and text[after] == " ":
            after += 1
        if after < len(text) and text[after] == "{":
            close = _matching_brace(text, after)
            return None if close < 0 else text[after + 1 : close].strip()
        if after > start + len(command) and after < len(text):
            # `\boxed 5` (a one-token argument after a space) is valid LaTeX.
            return re.match(r"\S+", text[after:]).group().rstrip("$.")
        # `\boxedx` is not a box command; look further left.
        start = max(text.rfind(c, 0, start) for c in _BOX_COMMANDS)
    return None


_LETTER = "A-J"
# The keyword is matched in any case, the letter only as a capital ("the answer is a bit").
# Possessive `\s*+`: neighbouring optional parts never trade whitespace back and forth, so
# "Answer" followed by pages of spaces costs one pass, not a cubic search.
_ANSWER_LINE = re.compile(
    rf"(?i:answer|correct\s++(?:option|choice))\s*+(?i:is)?\s*+[:\-]?\s*+"
    rf"(?:\*\*)?\s*+(?:\\text\{{)?\(?([{_LETTER}])\)?(?![A-Za-z])"
)
_PAREN_LETTER = re.compile(rf"\(([{_LETTER}])\)")
_LONE_LETTER = re.compile(rf"(?<![A-Za-z\\])([{_LETTER}])(?![A-Za-z])")


class MultipleLetters(ValueError):
    """The response names more than one choice where it commits to an answer."""


def _single_letter(letters: list[str]) -> str | None:
    distinct = sorted(set(letters))
    if len(distinct) > 1:
        raise MultipleLetters(",".join(distinct))
    return distinct[0] if distinct else None


def choice_letter(response: str) -> str | None:
    r"""The chosen letter: from the last box, else the last "Answer: X", else a lone "(X)".

    Raises MultipleLetters when the committing place names two different letters
    ("\boxed{A, C}", "Answer: A or B", "(A) ... (C)" with nothing more explicit).
    """
    text = final_answer(response)
    boxed = last_boxed(text)
    if boxed is not None:
        inner = re.sub(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}", r"\1", boxed)
        return _single_letter(_LONE_LETTER.findall(inner))
    answers = list(_ANSWER_LINE.finditer(text))
    if answers:
        last = answers[-1]
        # "Answer: A or B" names two letters at the same commitment.
        rest = text[last.end() : last.end() + 40].split("\n", 1)[0]
        extra = re.match(rf"\s*(?:,|or|and|/|&)\s*\(?([{_LETTER}])\)?(?![A-Za-z])", rest)
        return _single_letter([last.group(1)] + ([extra.group(1)] if extra else []))
    return _single_letter(_PAREN_LETTER.findall(text))


_PYTHON_TAGS = {"python", "py", "python3"}


def final_python_block(response: str) -> str | None:
    """The last fenced python block of the final answer (an untagged fence as a fallback).

    Fences pair up in order (opening, closing), found with one linear scan: a regex with a
    lazy body would rescan the text from every unclosed opening fence.
    """
    text = final_answer(response)
    fences = [match.start() for match in re.finditer("```", text)]
    tagged, untagged = [], []
    for open_at, close_at in zip(fences[0::2], fences[1::2], strict=False):
        header, newline, code = text[open_at + 3 : close_at].partition("\n")
        if not newline:
            continue
        language = header.strip().lower()
        if language in _PYTHON_TAGS:
            tagged.append(code)
        elif not language:
            untagged.append(code)
    chosen = tagged or untagged
    return chosen[-1] if chosen else None
