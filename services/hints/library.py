"""Hint libraries: versioned YAML files of hint texts, loaded and checked once at start.

The built-in libraries (`services/hints/libraries/*.yaml`: the paper's math hints, its
code-task hint with a test template, and an example finance library) are always there;
a user adds their own per domain in a directory (`START_HINTS_LIBRARY_DIR`), where a file
with the same library name replaces the built-in one. The policy (`policy.py`) draws
from a library by weight; every drawn hint is recorded in the episode by id.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.common.text_contract import open_code_block

BUILTIN_DIR = Path(__file__).resolve().parent / "libraries"


class HintSpec(BaseModel):
    """One hint: its text opens a python block that the model then fills."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    category: str = Field(min_length=1)
    text: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0, description="Relative chance of being drawn.")

    @field_validator("text")
    @classmethod
    def _opens_python_block(cls, text: str) -> str:
        # The policy generates with the closing fence as the only stop after a hint, so a
        # hint must leave a python block open (possibly with a code template inside it).
        if open_code_block(text) is None:
            raise ValueError("a hint must end inside an open ```python block (end it with '```python\\n')")
        return text


class HintLibrary(BaseModel):
    """A named, versioned set of hints for one domain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    version: str = Field(min_length=1)
    domain: str = Field(min_length=1)
    description: str = ""
    # Optional chance of each category; then a hint's weight is relative within its
    # category. Without it, a hint's weight is relative to all hints of the library.
    category_weights: dict[str, float] = Field(default_factory=dict)
    hints: tuple[HintSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> HintLibrary:
        ids = [hint.id for hint in self.hints]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"hint ids must be unique; repeated: {', '.join(duplicates)}")
        if self.category_weights:
            categories = {hint.category for hint in self.hints}
            if set(self.category_weights) != categories:
                raise ValueError(
                    f"category_weights must give every category exactly: {', '.join(sorted(categories))}"
                )
            if any(weight <= 0 for weight in self.category_weights.values()):
                raise ValueError("category_weights must be > 0")
        return self

    def draw(self, rng: random.Random) -> HintSpec:
        """One hint, by category weights (when given) then hint weights."""
        hints: Sequence[HintSpec] = self.hints
        if self.category_weights:
            names = sorted(self.category_weights)
            category = rng.choices(names, weights=[self.category_weights[n] for n in names])[0]
            hints = [hint for hint in self.hints if hint.category == category]
        return rng.choices(hints, weights=[hint.weight for hint in hints])[0]


class LibraryError(ValueError):
    """A library file that cannot be used; the message names the file and the problem."""


def load_library(path: Path) -> HintLibrary:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return HintLibrary.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise LibraryError(f"hint library {path}: {exc}") from exc


class LibraryCatalog:
    """All libraries by name: the built-in ones, then the user's directory on top."""

    def __init__(self, user_dir: Path | None = None) -> None:
        self._libraries: dict[str, HintLibrary] = {}
        dirs = [BUILTIN_DIR] + ([user_dir] if user_dir is not None else [])
        for directory in dirs:
            if not directory.is_dir():
                raise LibraryError(f"hint library directory {directory} does not exist")
            for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
                library = load_library(path)
                self._libraries[library.name] = library

    def names(self) -> list[str]:
        return sorted(self._libraries)

    def get(self, name: str) -> HintLibrary | None:
        return self._libraries.get(name)
