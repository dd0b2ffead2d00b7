"""Consoles whose tables stay readable wherever people read them.

rich guesses 80 columns when it sees no terminal (a file, a pipe, CI's log) and then cuts
column names ("accuracy" becomes "accur…"). Off a terminal these consoles are wide; on one,
as wide as the terminal.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

WIDTH_OFF_A_TERMINAL = 200


def readable_console(**options: Any) -> Console:  # noqa: ANN401 - rich's Console options
    console = Console(**options)
    return console if console.is_terminal else Console(width=WIDTH_OFF_A_TERMINAL, **options)
