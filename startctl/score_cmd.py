"""`startctl score` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="score commands.", no_args_is_help=True)
