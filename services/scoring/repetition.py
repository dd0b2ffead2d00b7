"""Detect the repetitive patterns START drops from training data.

A long chain of thought that starts looping (the same paragraph again and again, a cycle of
lines, one long phrase repeated) must not become a training example. The measures are the
repetition filters of Gopher (Rae et al., 2021), which are simple, linear in the text and
well studied, plus a zlib compression ratio for loops that have no line or word structure
(a digit string repeated for pages):

- duplicate line fraction: characters in lines that already appeared, over all characters;
- duplicate paragraph fraction: the same over blank-line separated paragraphs;
- duplicate n-gram fraction: characters covered by word n-grams that occur more than once;
- compression: how small zlib makes the text (only for texts long enough to mean anything).

Each measure has a threshold (settings, calibrated on the examples in
tests/services/scoring/test_repetition.py). The score is the largest measure relative to
its threshold, so a score of 1.0 or more is the "repetitive" verdict and the reason names
the measure that tripped.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class RepetitionThresholds:
    max_duplicate_line_fraction: float = 0.3
    max_duplicate_paragraph_fraction: float = 0.3
    max_duplicate_ngram_fraction: float = 0.7
    ngram_words: int = 10
    # Lines shorter than this ("Wait,", "$$", "```") repeat in any healthy trace.
    min_line_chars: int = 20
    min_compression_ratio: float = 0.08
    compression_min_chars: int = 2000


@dataclass(frozen=True)
class RepetitionVerdict:
    score: float
    repetitive: bool
    reason: str


def _duplicate_fraction(units: list[str], total_chars: int) -> float:
    """Characters in units that repeat an earlier unit, over the text's characters."""
    seen: set[str] = set()
    duplicated = 0
    for unit in units:
        if unit in seen:
            duplicated += len(unit)
        else:
            seen.add(unit)
    return duplicated / total_chars if total_chars else 0.0


def _duplicate_ngram_fraction(words: list[str], n: int) -> float:
    """Characters of words inside some n-gram that occurs twice or more (Gopher's measure)."""
    if len(words) < 2 * n:
        return 0.0
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    counts = Counter(grams)
    covered = bytearray(len(words))
    for start, gram in enumerate(grams):
        if counts[gram] > 1:
            covered[start : start + n] = b"\x01" * n
    total = sum(len(word) for word in words)
    return sum(len(word) for word, hit in zip(words, covered, strict=True) if hit) / total


def detect_repetition(text: str, thresholds: RepetitionThresholds) -> RepetitionVerdict:
    stripped = text.strip()
    if not stripped:
        return RepetitionVerdict(0.0, False, "")
    total = len(stripped)
    lines = [line.strip() for line in stripped.splitlines()]
    lines = [line for line in lines if len(line) >= thresholds.min_line_chars]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", stripped) if len(p.strip()) >= thresholds.min_line_chars]
    measures = {
        "duplicate lines": (
            _duplicate_fraction(lines, total), thresholds.max_duplicate_line_fraction
        ),
        "duplicate paragraphs": (
            _duplicate_fraction(paragraphs, total), thresholds.max_duplicate_paragraph_fraction
        ),
        f"duplicate {thresholds.ngram_words}-grams": (
            _duplicate_ngram_fraction(stripped.split(), thresholds.ngram_words),
            thresholds.max_duplicate_ngram_fraction,
        ),
    }
    ratios = {name: value / limit for name, (value, limit) in measures.items()}
    if total >= thresholds.compression_min_chars:
        raw = stripped.encode()
        compression = len(zlib.compress(raw, 6)) / len(raw)
        measures["compression ratio"] = (compression, thresholds.min_compression_ratio)
        # Lower is more repetitive: relative to the threshold the other way round.
        ratios["compression ratio"] = thresholds.min_compression_ratio / max(compression, 1e-9)
    worst = max(ratios, key=ratios.__getitem__)
    score = ratios[worst]
    value, limit = measures[worst]
    repetitive = score >= 1.0
    reason = f"{worst}: {value:.3f} (threshold {limit:g})" if repetitive else ""
    return RepetitionVerdict(round(score, 4), repetitive, reason)
