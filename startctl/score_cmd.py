"""`startctl score`: grade responses from the command line with the service's own code.

`startctl score batch FILE.jsonl --json` grades one JSON object per line
(`{"task_type", "response", "reference", "tests"?}`) in an in-process grader pool, exactly
as the scoring server does, and prints one result per line, in input order. Code items go
to the sandbox service at START_SANDBOX_ADDR.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from google.protobuf import json_format
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from services.common.errors import ServiceError
from services.common.settings import load_settings, parse_overrides
from services.scoring.graders import CODE, TASK_TYPES, Verdict
from services.scoring.scorer import Item
from services.scoring.server import Settings, build_scorer
from start.v1 import common_pb2

app = typer.Typer(help="Grade responses (math, multiple choice, code) as the scoring service does.")


def read_items(path: Path) -> list[Item]:
    """Items from a JSONL file; a bad line stops with its line number and what to fix."""
    items = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"{path}:{number}: not JSON: {exc}") from exc
        task_type = row.get("task_type")
        if task_type not in TASK_TYPES:
            raise typer.BadParameter(f"{path}:{number}: task_type {task_type!r} is not one of {', '.join(TASK_TYPES)}")
        tests = [json_format.ParseDict(test, common_pb2.TestCase()) for test in row.get("tests", [])]
        if task_type == CODE and not tests:
            raise typer.BadParameter(f"{path}:{number}: a code item needs \"tests\"")
        items.append(Item(task_type, str(row.get("response", "")), str(row.get("reference", "")), tests))
    return items


async def grade_items(items: list[Item], settings: Settings) -> list[Verdict]:
    scorer = build_scorer(settings)
    try:
        return await scorer.score(items)
    finally:
        await scorer.close()


@app.command("batch")
def batch(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL: task_type, response, reference, tests."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per input line, in order."),
    set_: list[str] = typer.Option([], "--set", help="Scoring setting as key=value (as START_SCORING_*)."),
) -> None:
    """Grade every line of FILE; prints correct, extracted and, when not correct, the reason."""
    try:
        settings = load_settings(Settings, parse_overrides(set_))
    except (ValueError, ValidationError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    items = read_items(file)
    try:
        verdicts = asyncio.run(grade_items(items, settings))
    except ServiceError as exc:
        typer.echo(f"startctl score batch: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    if json_out:
        for verdict in verdicts:
            row = {"correct": verdict.correct, "extracted": verdict.extracted}
            if not verdict.correct:
                row["reason"] = verdict.reason
            print(json.dumps(row, ensure_ascii=False))
        return
    table = Table("#", "task", "correct", "extracted", "reason")
    for number, (item, verdict) in enumerate(zip(items, verdicts, strict=True), start=1):
        extracted = verdict.extracted if len(verdict.extracted) <= 60 else verdict.extracted[:57] + "..."
        table.add_row(str(number), item.task_type, "yes" if verdict.correct else "no", extracted, verdict.reason)
    console = Console()
    console.print(table)
    console.print(f"{sum(v.correct for v in verdicts)}/{len(verdicts)} correct")
