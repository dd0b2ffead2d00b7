"""Find the answer a response commits to: the part after the thinking, the last box, the
chosen letter, the final python block.

Everything here is linear in the response (huge responses are graded too) and pure
string work, so the graders and the code path share one notion of "the final answer".
"""

from __future__ import annotations

import re

from services.common.text_contract import CLOSING_FENCE, END_THINK, START_THINK

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def cut_off(response: str) -> bool:
    """The response opened `<think>` and never closed it: it was cut off mid-reasoning."""
    return response.rfind(START_THINK) > response.rfind(END_THINK)


def final_answer(response: str) -> str:
    """The text after the last end-of-thinking token, the whole response when it has no think
    tags at all, and nothing when it opened `<think>` and never closed it (cut off)."""
    if cut_off(response):
        return ""
    head, sep, tail = response.rpartition(END_THINK)
    return tail if sep else response


def _matching_brace(text: str, open_at: int, end: int | None = None) -> int:
    """Index of the `}` closing the `{` at open_at (before `end`), or -1 when it is never closed."""
    depth = 0
    # Jump from brace to brace with a regex instead of walking every character: a box
    # around a 5,000-digit number costs a handful of steps.
    for match in _BRACE.finditer(text, open_at, len(text) if end is None else end):
        depth += 1 if match.group() == "{" else -1
        if depth == 0:
            return match.start()
    return -1


_BRACE = re.compile(r"(?<!\\)[{}]")
_TOKEN = re.compile(r"\S+")


def _last_box(text: str, end: int) -> tuple[int, int, str | None] | None:
    """The last box command in text[:end]: (where it starts, where it ends, its content).

    The content is None when that box is never closed (before `end`); None in all when
    there is no box command at all.
    """
    start = max(text.rfind(command, 0, end) for command in _BOX_COMMANDS)
    while start >= 0:
        command = next(c for c in _BOX_COMMANDS if text.startswith(c, start))
        after = start + len(command)
        while after < end and text[after] == " ":
            after += 1
        if after < end and text[after] == "{":
            close = _matching_brace(text, after, end)
            return (start, end, None) if close < 0 else (start, close + 1, text[after + 1 : close].strip())
        if after > start + len(command) and after < end:
            # `\boxed 5` (a one-token argument after a space) is valid LaTeX.
            token = _TOKEN.match(text, after, end).group()
            return start, after + len(token), token.rstrip("$.")
        # `\boxedx` is not a box command; look further left.
        start = max(text.rfind(c, 0, start) for c in _BOX_COMMANDS)
    return None


def last_boxed(text: str) -> str | None:
    r"""Content of the last `\boxed{...}` (or `\fbox{...}`); None when absent or unclosed.

    An unclosed last box is no answer, even if an earlier box closed: the response's final
    commitment is what is graded, not a guess at what it meant.
    """
    box = _last_box(text, len(text))
    return None if box is None else box[2]


# What may stand between the boxes of one multi-part answer: math delimiters, spacing,
# punctuation, "and"/"or" (as words or in \text{}), part labels "(a)", "Part (b):", and
# the name of the next part ("y ="). Prose ("Wait, recomputing gives") ends the run.
# Applied by substitution to at most _MAX_GAP characters, so it costs nothing on hostile input.
# A name: a letter or a command, a subscript, and a function's argument (`f(x)`, `f^{-1}(x)`).
_NAME = r"(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w{1,8}\}?)?(?:\^\{-1\})?(?:\(\s*+[a-z]\s*+\))?"
# "the maximum is": a part named in words, kept as its usual letter (M, m).
_WORD_NAMES = {"maximum": "M", "minimum": "m"}
_WORD_NAME = r"\b(?i:the)\s++(?i:(maximum|minimum))(?:\s++value)?\s++is\b"
_CONNECTOR_TOKEN = re.compile(
    r"\(\s*+(?:at|when|for)\s[^()]{0,40}\)|"  # "(at $x = 2$)" after a part
    r"\$|\\[()\[\],;: ]|\\q?quad|\\\\|\\text\s*\{\s*(?:and|or|,|;)?\s*\}|\b(?:and|or)\b|[,;.&:*]"
    r"|\(\s*[a-z0-9]\s*\)|\b[a-z]\)|\b(?i:part)\b|" + _WORD_NAME + "|" + _NAME + r"\s*=|\s"
)
_LABEL = re.compile(r"(?<![A-Za-z0-9\\])(" + _NAME + r")\s*+=\s*+\$?\s*+$")
_WORD_LABEL = re.compile(_WORD_NAME + r"\s*+\$?\s*+$")
_MAX_GAP = 80
MAX_BOXES = 16


def _connector(gap: str) -> bool:
    return len(gap) <= _MAX_GAP and not _CONNECTOR_TOKEN.sub("", gap)


def _label(text: str, start: int) -> str:
    """The name written just before a box (`x = \\boxed{2}`, `the maximum is \\boxed{8}`: M), or ""."""
    match = _LABEL.search(text[max(0, start - 24) : start])
    if match:
        return match.group(1)
    match = _WORD_LABEL.search(text[max(0, start - 40) : start])
    return _WORD_NAMES[match.group(1).lower()] if match else ""


def boxed_answer(text: str, last: tuple[int, int, str | None] | None = None) -> str | None:
    r"""The boxed answer of a final answer: the last box, joined by the boxes before it that
    belong to the same multi-part answer; None when there is no closed last box.

    `\boxed{2} and \boxed{3}`, `x = \boxed{2}, y = \boxed{3}`, a box per pair or per root:
    boxes separated only by connectors (see _CONNECTOR_TOKEN) are one answer, read as the
    comma-separated list `2, 3` / `x = 2, y = 3` (the name before a box is kept when the
    box holds only a value). A box followed by prose and a later box ("Wait, recomputing
    gives \boxed{3}") is a change of mind: only the last box counts. The walk goes back box
    by box and stops at the first gap that is not a connector, so it is linear.
    """
    last = _last_box(text, len(text)) if last is None else last
    if last is None or last[2] is None:
        return None
    boxes = [last]
    while len(boxes) <= MAX_BOXES:
        earlier = _last_box(text, boxes[0][0])
        if earlier is None or earlier[2] is None or not earlier[2] or not _connector(text[earlier[1] : boxes[0][0]]):
            break
        boxes.insert(0, earlier)
    if len(boxes) == 1 or len(boxes) > MAX_BOXES:
        return last[2]
    parts = []
    for start, _, content in boxes:
        label = "" if "=" in content else _label(text, start)
        parts.append(f"{label} = {content}" if label else content)
    return ", ".join(parts)


# A final-answer sentence, for a response that boxes nothing: "The answer is 42.",
# "**Final Answer:** 42", "Final Answer: The final answer is $42$.", "Therefore, x = 5."
# Keywords are found with one linear scan; the value is read from a bounded window after one.
_ANSWER_KEYWORD = re.compile(
    r"(?i:final\s++answer(?:\s++is)?|answer\s++is|answer\s*+:|\b(?:therefore|thus|hence|so)\b)"
)
_CONCLUDING = {"therefore", "thus", "hence", "so"}
_THEREFORE_VALUE = re.compile(r"\s*+,?\s*+(?:\$|\\\(|\\\[)?\s*+" + _NAME + r"\s*+=")
_PROSE = re.compile(r"(?<!\\)\b[A-Za-z]{2,}\s++[A-Za-z]{2,}\s++[A-Za-z]{2,}\b")
_MATH_DELIMITERS = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_SENTENCE_END = re.compile(r"\.(?!\d)|\n")
_MAX_SENTENCE = 300


def _math_piece(text: str) -> tuple[str, int] | None:
    """The math at the start of `text` (`$...$`, `\\(...\\)`...): (its content, where it ends)."""
    for opening, closing in _MATH_DELIMITERS.items():
        if text.startswith(opening):
            close = text.find(closing, len(opening))
            return (text[len(opening) : close], close + len(closing)) if close > len(opening) else None
    return None


# Between two math pieces of one answer ("$b = -1$, $a = 3$."); then the sentence must end.
_PIECE_GAP = re.compile(r"\s*+(?:,|;|\band\b|\\text\s*+\{\s*+and\s*+\})?\s*+(?=\$|\\\()")
_SENTENCE_DONE = re.compile(r"\s*+[.,;!]?\s*+(?:\n|$)")


def _sentence_value(window: str) -> str | None:
    """The answer at the start of `window`: its math (every piece of it, `$b = -1$, $a = 3$.`),
    else the words up to the sentence end."""
    value = window.lstrip(" \t\n:*").lstrip()
    piece = _math_piece(value)
    if piece is not None:
        pieces, at = [piece[0]], piece[1]
        while len(pieces) <= MAX_BOXES and (gap := _PIECE_GAP.match(value, at)):
            following = _math_piece(value[gap.end() :])
            if following is None:
                break
            pieces.append(following[0])
            at = gap.end() + following[1]
        joined = len(pieces) > 1 and len(pieces) <= MAX_BOXES and _SENTENCE_DONE.match(value, at)
        value = ", ".join(p.strip() for p in pieces) if joined else pieces[0]
    else:
        end = _SENTENCE_END.search(value)
        value = value[: end.start()] if end else value
    value = value.strip().strip("*").strip().rstrip(".,;:").strip()
    if not value or _PROSE.search(re.sub(r"\\[A-Za-z]+\s*\{[^{}]*\}", "", value)):
        return None
    return value


# "Hence the number of ways is 120.": a closing sentence that states the asked quantity.
_CONCLUDING_IS = re.compile(r"\s*+,?\s*+(?i:the)\s[^.\n]{0,80}?\s(?:is|equals)\s++")
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9]")


def _closes(rest: str) -> bool:
    """Nothing but punctuation follows the sentence that starts `rest` (math read whole)."""
    rest = rest.lstrip()
    piece = _math_piece(rest)
    if piece is not None:
        rest = rest[piece[1] :]
    end = _SENTENCE_END.search(rest)
    return end is None or not _ALPHANUMERIC.search(rest, end.end())


def answer_sentence(text: str) -> str | None:
    """The value of the last final-answer sentence ("The answer is 42." -> "42"), else None."""
    keywords = list(_ANSWER_KEYWORD.finditer(text))
    for keyword in reversed(keywords[-20:]):
        window = text[keyword.end() : keyword.end() + _MAX_SENTENCE]
        if keyword.group().lower() in _CONCLUDING:
            if _THEREFORE_VALUE.match(window):
                # "Therefore, x = 5."
                window = window.lstrip(" \t,")
            else:
                # "Hence the number of ways is 120.", only as the closing sentence.
                stated = _CONCLUDING_IS.match(window)
                if stated is None or len(text) - keyword.end() > _MAX_SENTENCE or not _closes(window[stated.end() :]):
                    continue
                window = window[stated.end() :]
        value = _sentence_value(window)
        if value is not None:
            return value
    return None


def math_answer(response: str) -> tuple[str | None, str]:
    r"""(answer, reason): the boxed answer of the final answer, or, when the final answer has
    no box at all, its final-answer sentence. `reason` says why there is none.
    """
    if cut_off(response):
        return None, "no answer: the thinking is never closed (the response was cut off)"
    text = final_answer(response)
    box = _last_box(text, len(text))
    if box is not None:
        if box[2] is None:
            return None, "no answer: the last \\boxed{} is never closed"
        answer = boxed_answer(text, box)
        return (answer, "") if answer else (None, "no answer: the last \\boxed{} is empty")
    sentence = answer_sentence(text)
    if sentence is None:
        return None, "no answer: no \\boxed{} and no final-answer sentence in the final answer"
    return sentence, ""


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
    # Markdown fences, opening or closing: the tool-call fence is one, with its tag.
    fences = [match.start() for match in re.finditer(re.escape(CLOSING_FENCE), text)]
    tagged, untagged = [], []
    for open_at, close_at in zip(fences[0::2], fences[1::2], strict=False):
        header, newline, code = text[open_at + len(CLOSING_FENCE) : close_at].partition("\n")
        if not newline:
            continue
        language = header.strip().lower()
        if language in _PYTHON_TAGS:
            tagged.append(code)
        elif not language:
            untagged.append(code)
    chosen = tagged or untagged
    return chosen[-1] if chosen else None
