"""A dataset directory: the trajectories a builder kept, how it was built, how it was reviewed.

Layout (a local directory or an fsspec URL, like a job's results):

    trajectories.jsonl   one training sample per line (`training.data.Sample`): the
                         episode's spans typed as training reads them, and in `meta` where
                         it came from and its review state (`meta.review`)
    build.json           what the builder did: kind, settings, source jobs and their
                         manifests, every filter with how many problems it dropped
    edits.jsonl          every review action, in order: who, when, what, the diff
    README.md            the dataset card: a YAML header (as Hugging Face datasets use)
                         and tables, rendered from the three files above on every save
    export/<format>.jsonl  what `startctl dataset export` writes for training

Each file has one owner: builders write build.json and the first trajectories.jsonl,
review (recipe/review.py) rewrites trajectories.jsonl and appends edits, and the card is
only ever rendered, never read back. A trajectory dropped in review stays in the file
(so it can be restored) and is left out of every export.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from services.orchestrator.results import filesystem, join, write_bytes_atomic
from training.data import Sample

TRAJECTORIES = "trajectories.jsonl"
BUILD = "build.json"
EDITS = "edits.jsonl"
CARD = "README.md"
EXPORT_DIR = "export"


class Review(BaseModel):
    """A trajectory's review state, kept in its `meta.review`."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["kept", "dropped"] = "kept"
    reason: str = Field("", description="Why it was dropped.")
    flags: list[str] = Field(default_factory=list, description="Checks it fails; an export leaves it out.")
    edited: bool = False


class Edit(BaseModel):
    """One review action, as edits.jsonl records it."""

    model_config = ConfigDict(extra="forbid")
    at: str
    by: str = ""
    trajectory_id: str
    action: Literal["edit", "drop", "restore", "rerun"]
    span: int | None = None
    span_type: str = ""
    diff: str = ""
    reason: str = ""


def review_of(sample: Sample) -> Review:
    return Review.model_validate(sample.meta.get("review") or {})


def set_review(sample: Sample, review: Review) -> None:
    sample.meta["review"] = review.model_dump()


@dataclass
class Dataset:
    """A dataset directory in memory; `save` writes it back whole (each file atomically)."""

    url: str
    build: dict[str, Any]
    trajectories: list[Sample]
    edits: list[Edit] = field(default_factory=list)

    def __post_init__(self) -> None:
        ids = [t.id for t in self.trajectories]
        duplicates = [i for i, n in Counter(ids).items() if n > 1]
        if duplicates:
            raise ValueError(f"{self.url}: trajectory ids must be unique; repeated: {duplicates[:5]}")
        self._by_id = {t.id: t for t in self.trajectories}

    def get(self, trajectory_id: str) -> Sample:
        try:
            return self._by_id[trajectory_id]
        except KeyError:
            raise KeyError(f"no trajectory {trajectory_id!r} in {self.url}") from None

    def kept(self) -> list[Sample]:
        return [t for t in self.trajectories if review_of(t).status == "kept"]

    def flagged(self) -> list[Sample]:
        return [t for t in self.trajectories if review_of(t).flags]

    @classmethod
    def load(cls, url: str) -> Dataset:
        if not exists(url):
            raise FileNotFoundError(
                f"{url} is not a dataset directory (no {BUILD}); build one with `startctl dataset build`"
            )
        build = json.loads(_read_text(join(url, BUILD)))
        trajectories = []
        for lineno, line in enumerate(_read_text(join(url, TRAJECTORIES)).splitlines(), 1):
            if line.strip():
                try:
                    trajectories.append(Sample.model_validate_json(line))
                except ValueError as exc:
                    raise ValueError(f"{join(url, TRAJECTORIES)}:{lineno}: not a training sample: {exc}") from exc
        edits_url = join(url, EDITS)
        edits = [Edit.model_validate_json(x) for x in _read_text(edits_url).splitlines() if x.strip()] if (
            _exists(edits_url)
        ) else []
        return cls(url=url, build=build, trajectories=trajectories, edits=edits)

    def save(self) -> None:
        """Write trajectories, edits and the card; build.json is the builder's, written once."""
        rows = (t.model_dump(exclude_none=True) for t in self.trajectories)
        write_bytes_atomic(join(self.url, TRAJECTORIES), jsonl(rows))
        write_bytes_atomic(join(self.url, EDITS), jsonl(e.model_dump() for e in self.edits))
        write_bytes_atomic(join(self.url, CARD), render_card(self).encode())

    def create(self) -> None:
        """Write a new dataset directory: build.json first, then the rest."""
        write_bytes_atomic(join(self.url, BUILD), json.dumps(self.build, indent=2, sort_keys=True).encode())
        self.save()


def exists(url: str) -> bool:
    return _exists(join(url, BUILD))


def jsonl(rows: Iterable[dict]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def _exists(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.exists(path)


def _read_text(url: str) -> str:
    fs, path = filesystem(url)
    with fs.open(path, "rb") as handle:
        return handle.read().decode()


def counts(dataset: Dataset) -> dict[str, int]:
    """Trajectories by review state, and what they hold."""
    kept = dataset.kept()
    return {
        "trajectories": len(dataset.trajectories),
        "kept": len(kept),
        "dropped_in_review": len(dataset.trajectories) - len(kept),
        "flagged": len(dataset.flagged()),
        "edited": sum(review_of(t).edited for t in dataset.trajectories),
        "with_tool_calls": sum(1 for t in kept if any(s.type == "tool_output" for s in t.spans)),
    }


def render_card(dataset: Dataset) -> str:
    """The dataset card: YAML header (machine-readable), then what a reader wants to know."""
    build = dataset.build
    c = counts(dataset)
    header = {
        "pretty_name": build.get("name") or f"START {build.get('kind', '')} dataset",
        "language": ["en"],
        "license": build.get("license", "other"),
        "task_categories": ["text-generation"],
        "tags": ["start", "tool-use", "reasoning", str(build.get("kind", ""))],
        "size_categories": [_size_category(c["kept"])],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": TRAJECTORIES}]}],
        "start": {
            "kind": build.get("kind"),
            "created": build.get("created"),
            "counts": c,
            "filters": build.get("filters", []),
            "settings": build.get("settings", {}),
            "sources": [{k: s.get(k) for k in ("role", "job_id", "url", "arm")} for s in build.get("sources", [])],
            "edits": len(dataset.edits),
        },
    }
    lines = ["---", yaml.safe_dump(header, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]
    lines += [f"# {header['pretty_name']}", ""]
    lines += [str(build.get("description", "")), ""] if build.get("description") else []
    lines += ["## Counts", "", "| what | count |", "|---|---:|"]
    lines += [f"| {name.replace('_', ' ')} | {value} |" for name, value in c.items()]
    lines += ["", "## Filters", "", "Every problem the builder looked at, and where it went, in the order applied.", ""]
    lines += ["| filter | dropped | left |", "|---|---:|---:|"]
    for f in build.get("filters", []):
        lines.append(f"| {f['name']}: {f.get('rule', '')} | {f['dropped']} | {f.get('left', '')} |")
    settings = yaml.safe_dump(build.get("settings", {}), sort_keys=True).rstrip()
    lines += ["", "## Settings", "", "```yaml", settings, "```"]
    lines += ["", "## Source jobs", ""]
    for source in build.get("sources", []):
        manifest = source.get("manifest", {})
        lines += [
            f"- **{source.get('role')}**: `{source.get('job_id')}` ({source.get('arm')}) at `{source.get('url')}`;"
            f" model `{manifest.get('model', '?')}`, hint library `{manifest.get('hint_library', '?')}`,"
            f" problems `{manifest.get('problem_set', '?')}` ({manifest.get('format', '?')})",
        ]
    lines += ["", "The full manifests are in `build.json`.", "", "## Review", ""]
    if not dataset.edits:
        lines += ["No edits yet (`startctl dataset review DIR`)."]
    for edit in dataset.edits:
        who = f" by {edit.by}" if edit.by else ""
        where = f" span {edit.span} ({edit.span_type})" if edit.span is not None else ""
        reason = f": {edit.reason}" if edit.reason else ""
        lines += [f"- {edit.at}{who}: **{edit.action}** `{edit.trajectory_id}`{where}{reason}"]
        if edit.diff:
            lines += ["", "  ```diff", *(f"  {line}" for line in edit.diff.rstrip("\n").splitlines()), "  ```", ""]
    lines += ["", "## Format", "", f"`{TRAJECTORIES}` holds one training sample per line (docs/training.md):"
              " the assistant turn is a list of typed spans; `model` and `tool_code` spans carry loss, `prompt`,"
              " `hint` and `tool_output` spans do not. `startctl dataset export` writes what training reads"
              " (docs/datasets.md)."]
    return "\n".join(lines) + "\n"


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "n>1M"
