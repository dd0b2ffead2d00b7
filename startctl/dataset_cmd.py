"""`startctl dataset`: build Hint-RFT / RFT datasets from jobs' results, review them, export them.

    startctl dataset build hint-rft --greedy JOB --hint-infer JOB --out runs/datasets/hint-rft
    startctl dataset build rft --samples JOB --out runs/datasets/rft
    startctl dataset review runs/datasets/hint-rft            a web page on 127.0.0.1
    startctl dataset review runs/datasets/hint-rft --export review/   then --apply review/
    startctl dataset export runs/datasets/hint-rft --format start|messages

A JOB is a job id under `--results` (the results root `startctl job submit --out` wrote
to) or the path/URL of the job's folder. Directories may be fsspec URLs (s3://, gs://).
The rules are in recipe/select.py, review in recipe/review.py, the formats in
recipe/export.py; docs/datasets.md explains them for users.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from recipe.dataset import Dataset, counts
from services.common.settings import DEFAULT_PORTS
from services.orchestrator.results import absolute
from startctl.consoles import readable_console

app = typer.Typer(help="Datasets: Hint-RFT and RFT builders, review, export for training.", no_args_is_help=True)
build_app = typer.Typer(help="Build a dataset from jobs' Parquet results.", no_args_is_help=True)
app.add_typer(build_app, name="build")
console = Console(stderr=True)
out_console = readable_console()

RESULTS = typer.Option("runs/jobs", "--results", help="Results root the job ids are under (a directory or URL).")
SEED = typer.Option(0, help="Seed of the choice among a problem's candidates (recorded).")
MAX_REP = typer.Option(1.0, "--max-repetition-score",
                       help="Drop responses scoring this or more on the repetition detector (1.0: its verdict).")
PREFER_TOOLS = typer.Option(False, "--prefer-tool-calls", help="Choose among candidates with a tool call first.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace a dataset already at --out (and its review).")
JSON = typer.Option(False, "--json", help="End with one JSON object on stdout.")


def _user_errors(func):  # noqa: ANN001, ANN202
    """A refusal (a missing job, a wrong arm, a bad edit) as one red line and exit 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        from recipe.review import ReviewError

        try:
            return func(*args, **kwargs)
        except (ValueError, FileNotFoundError, FileExistsError, KeyError, ReviewError) as exc:
            console.print(f"[red]error:[/] {exc.args[0] if exc.args else exc}")
            raise typer.Exit(2) from exc

    return wrapper


def selection_settings(seed: int, max_repetition_score: float, prefer_tool_calls: bool):  # noqa: ANN202
    """Selection settings; the repetition thresholds are the scoring service's (START_SCORING_*)."""
    from recipe.select import SelectionSettings
    from services.common.settings import load_settings
    from services.scoring.server import Settings as ScoringSettings

    thresholds = load_settings(ScoringSettings).repetition_thresholds()
    return SelectionSettings(seed=seed, max_repetition_score=max_repetition_score,
                             prefer_tool_calls=prefer_tool_calls, repetition=thresholds)


def _report_build(dataset: Dataset, json_out: bool) -> None:
    build = dataset.build
    table = Table(title=f"{build['kind']} dataset: {build['kept']} kept of {build['problems_seen']} problems")
    for column, justify in (("filter", "left"), ("rule", "left"), ("dropped", "right"), ("left", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for f in build["filters"]:
        table.add_row(f["name"], f["rule"], str(f["dropped"]), str(f["left"]))
    out_console.print(table)
    console.print(f"written to {dataset.url} (card: README.md); review it with: startctl dataset review {dataset.url}")
    if json_out:
        print(json.dumps({"url": dataset.url, "kind": build["kind"], "problems_seen": build["problems_seen"],
                          "kept": build["kept"], "filters": build["filters"]}))


@build_app.command("hint-rft")
@_user_errors
def build_hint_rft(
    greedy: str = typer.Option(..., help="The greedy job (id or folder)."),
    hint_infer: str = typer.Option(..., "--hint-infer", help="The hint-infer job over the same problems."),
    out: str = typer.Option(..., help="Dataset directory (or URL) to write."),
    results: str = RESULTS,
    seed: int = SEED,
    max_repetition_score: float = MAX_REP,
    prefer_tool_calls: bool = PREFER_TOOLS,
    overwrite: bool = OVERWRITE,
    json_out: bool = JSON,
) -> None:
    """Keep the problems greedy gets wrong and hint-infer right: one trajectory each."""
    from recipe.select import build, open_job

    sources = [open_job("greedy", greedy, results, ("greedy",)),
               open_job("hint-infer", hint_infer, results, ("hint-infer",))]
    settings = selection_settings(seed, max_repetition_score, prefer_tool_calls)
    _report_build(build("hint-rft", sources, out, settings, overwrite), json_out)


@build_app.command("rft")
@_user_errors
def build_rft(
    samples: str = typer.Option(..., help="The sample job (id or folder): several samples per problem."),
    out: str = typer.Option(..., help="Dataset directory (or URL) to write."),
    results: str = RESULTS,
    seed: int = SEED,
    max_repetition_score: float = MAX_REP,
    prefer_tool_calls: bool = PREFER_TOOLS,
    overwrite: bool = OVERWRITE,
    json_out: bool = JSON,
) -> None:
    """Keep one correct, non-repetitive response per problem (seeded choice)."""
    from recipe.select import build, open_job

    sources = [open_job("samples", samples, results, ("sample", "hint-infer", "greedy"))]
    settings = selection_settings(seed, max_repetition_score, prefer_tool_calls)
    _report_build(build("rft", sources, out, settings, overwrite), json_out)


@app.command()
@_user_errors
def review(
    directory: str = typer.Argument(..., help="Dataset directory (or URL)."),
    host: str = typer.Option("127.0.0.1", help="Address the page listens on (loopback: only this machine)."),
    port: int = typer.Option(8765, help="Port of the page (0: any free one)."),
    sandbox: str = typer.Option(f"127.0.0.1:{DEFAULT_PORTS['sandbox']}", help="Sandbox service that re-runs edited"
                                " tool code (`startctl up` serves one)."),
    by: str = typer.Option("", help="Reviewer name recorded with file-round-trip edits."),
    export_to: Path | None = typer.Option(None, "--export", help="Write one text file per trajectory here; no page."),
    apply_from: Path | None = typer.Option(None, "--apply", help="Apply the edited files from here; no page."),
) -> None:
    """Review in a web page (edit spans, drop, restore), or as files with --export/--apply."""
    from recipe.review import apply_changes, changes_from_files, export_files, sandbox_runner
    from startctl.episodes import reachable

    dataset = Dataset.load(absolute(directory))
    if export_to is not None:
        written = export_files(dataset, export_to)
        console.print(f"{len(written)} trajectories written to {export_to}; edit them, then:"
                      f" startctl dataset review {directory} --apply {export_to}")
        return
    runner = sandbox_runner(sandbox) if reachable(sandbox) else None
    if runner is None:
        console.print(f"[yellow]no sandbox at {sandbox}[/]: edited tool code will be flagged, not run again"
                      " (start one with `startctl up`, or pass --sandbox)")
    if apply_from is not None:
        edits = apply_changes(dataset, changes_from_files(dataset, apply_from), by=by, runner=runner)
        dataset.save()
        c = counts(dataset)
        console.print(f"applied {len(edits)} edits; {c['kept']} kept, {c['dropped_in_review']} dropped,"
                      f" {c['flagged']} flagged (see {dataset.url}/README.md)")
        return
    from recipe.review_page import serve_forever

    serve_forever(dataset.url, host=host, port=port, runner=runner, announce=console.print)


@app.command("export")
@_user_errors
def export_cmd(
    directory: str = typer.Argument(..., help="Dataset directory (or URL)."),
    format_: str = typer.Option("start", "--format", help="start (typed spans, exact loss masks) | messages (chat)."),
    out: str = typer.Option("", help="A .jsonl file (or URL) to write, or a folder for <format>.jsonl"
                            " (default: DIR/export/)."),
    tokenizer: str = typer.Option("", help="messages: the model whose chat template rendered the prompts"
                                  " (default: the source job's model, when it is a local directory)."),
    json_out: bool = JSON,
) -> None:
    """Write the kept, checked trajectories in a format a trainer reads."""
    from recipe.export import export

    dataset = Dataset.load(absolute(directory))
    if format_ == "messages" and not tokenizer:
        models = [s.get("manifest", {}).get("model", "") for s in dataset.build.get("sources", [])]
        tokenizer = next((m for m in models if m and Path(m).is_dir()), "")
    result = export(dataset, format_, out or None, tokenizer or None)
    console.print(f"exported {result.exported} trajectories ({result.format}) to {result.url}")
    for reason, n in sorted(result.left_out.items()):
        console.print(f"  left out {n}: {reason}")
    if json_out:
        print(json.dumps({"url": result.url, "format": result.format, "exported": result.exported,
                          "left_out": dict(result.left_out)}))
    if result.exported == 0:
        console.print("[red]nothing to export[/]: every trajectory was dropped or flagged")
        raise typer.Exit(1)
