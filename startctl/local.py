"""The embedded default: `startctl up`, `solve` and `demo` on one machine, on loopback."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the local commands to the top-level app."""
