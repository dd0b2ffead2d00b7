"""Tables written to a file or a pipe keep their full column names."""

from __future__ import annotations

import io

from rich.table import Table

from startctl.consoles import readable_console


def test_a_table_written_off_a_terminal_keeps_every_column_name_whole() -> None:
    names = ["arm", "n", "accuracy", "failed", "tool used", "tools/ep", "hints/ep", "tokens/ep", "cached share"]
    table = Table(title="greedy vs hint-infer")
    for name in names:
        table.add_column(name, justify="right")
    table.add_row("hint-infer", "64", "100%", "0", "100%", "2.00", "2.00", "156", "83%")
    out = io.StringIO()
    readable_console(file=out).print(table)
    assert all(name in out.getvalue() for name in names) and "…" not in out.getvalue()
