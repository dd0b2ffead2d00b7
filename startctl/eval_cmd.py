"""`startctl eval`: a benchmark score for a model, from a problem file to pass@k with intervals.

    startctl eval --problems data/micro/eval.jsonl --arm greedy --out runs/eval-greedy --local
    startctl eval --problems aime_2024.jsonl --arm sample --samples 16 --out runs/eval-aime --json
    startctl eval compare runs/eval-base runs/eval-start0 --out runs/base-vs-start0

`eval` runs the problem set as a job through the orchestrator's front door (as `startctl job
submit --wait` does: the job's Parquet results and report go under `DIR/jobs/`), follows it
with the progress bar, asks the front door for the job's evaluation (`EvaluateJob`) and
writes `DIR/evaluation.json` (the reply's JSON as is), `evaluation.md` and `plots/*.png`
(recipe/evaluate.py). `compare` pairs two such directories problem by problem
(recipe/compare.py). Metrics and files: docs/evaluation.md.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from recipe import compare as comparing
from recipe import evaluate
from services.orchestrator import results
from services.orchestrator.problemsets import ProblemSetError, load_problem_set
from start.v1 import orchestrator_pb2 as opb
from startctl.job_cmd import (
    ADDR,
    ARMS,
    MODEL,
    _front_door,
    _grpc_errors,
    _url,
    announce,
    console,
    follow,
    job_request,
    wide,
)
from startctl.stack import new_run_dir

app = typer.Typer(help="Benchmark scores: pass@1, avg@k, pass@k with 95% intervals; compare two evaluations.")
JOBS_DIR = "jobs"  # the eval's job results go under DIR/jobs/


def _refuse(code: str, message: str) -> typer.Exit:
    """One line saying what is wrong, and the exit status of a bad invocation (2)."""
    console.print(f"[red]{code}[/]: {message}", soft_wrap=True)
    return typer.Exit(2)


@app.callback(invoke_without_command=True)
@_grpc_errors
def run(
    ctx: typer.Context,
    problems: str = typer.Option("", "--problems", help="Problem set: JSONL, Parquet, CSV, HF dataset dir; or a URL."),
    arm: str = typer.Option("greedy", help="greedy | hint-infer | sample."),
    samples: int = typer.Option(0, help="Samples per problem, K (0: the arm's default, 16 for sample)."),
    out: str = typer.Option("", help="Directory for evaluation.json, evaluation.md, plots/ and jobs/."),
    ks: list[int] = typer.Option([], "--k", help="A pass@k to report (repeat it; default: 1 and K)."),
    format_: str = typer.Option("", "--format", help="start|math500|aime|gpqa|livecodebench (default: detected)."),
    limit: int = typer.Option(0, help="Evaluate only the first N problems (0: all)."),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="Run the good rows; count the bad ones."),
    shuffle_seed: int = typer.Option(0, help="Seed of the GPQA choice shuffle (recorded)."),
    temperature: float = typer.Option(0.0, help="Sampling temperature (0: the arm's default)."),
    top_p: float = typer.Option(0.0, "--top-p", help="Nucleus cut (0: the arm's default)."),
    max_tokens: int = typer.Option(0, help="Tokens per generation call at most (0: no per-call cap)."),
    max_total_tokens: int = typer.Option(0, help="Token budget of an episode (0: the service default)."),
    seed: int = typer.Option(0, help="Seed of the hint policy and of sampling."),
    key: str = typer.Option("", help="Idempotency key: the same key again is the same job (resumes it)."),
    json_out: bool = typer.Option(False, "--json", help="End with one JSON object: n, pass@1, avg@k, pass@k, ci95."),
    local: bool = typer.Option(False, "--local", help="Start the embedded platform for this evaluation."),
    model: str = MODEL,
    job_ref: str = typer.Option("", "--job", help="Evaluate a finished job's results instead (an id under --results, or"
                            " the job's folder); no problem set, no front door."),
    results_root: str = typer.Option("runs/jobs", "--results", help="With --job: the results root of job ids."),
    timeout: float = typer.Option(24 * 3600, help="Seconds to wait for the job at most."),
    addr: str = ADDR,
) -> None:
    """Evaluate a model on a problem set: run it as a job, then pass@1, avg@k, pass@k by
    source benchmark and task type, with 95% bootstrap intervals."""
    if ctx.invoked_subcommand is not None:
        return
    if job_ref and out:
        _evaluate_finished_job(job_ref, results_root, ks, out, json_out)
        return
    if not problems or not out:
        missing = " and ".join(name for name, value in (("--problems", problems), ("--out", out)) if not value)
        raise _refuse("usage", f"startctl eval needs {missing} (startctl eval --help)")
    if arm not in ARMS:
        raise _refuse("INVALID_ARGUMENT", f"arm: unknown arm {arm!r}; use one of {', '.join(ARMS)}")
    if any(k < 1 for k in ks) or (samples and any(k > samples for k in ks)):
        raise _refuse("INVALID_ARGUMENT", f"--k: each k must be in [1, --samples] (got {ks}, samples {samples})")
    if local and "://" not in problems:
        # The embedded platform takes a minute to start: check the file first, with the
        # front door's own reader, so a bad row is reported at once.
        try:
            load_problem_set(_url(problems), format_, skip_bad_rows=skip_bad_rows, shuffle_seed=shuffle_seed,
                             limit=limit)
        except ProblemSetError as exc:
            raise _refuse("INVALID_ARGUMENT", exc.message) from exc
    request = job_request(
        problems, arm, _url(results.join(out, JOBS_DIR)), format_=format_, samples=samples, temperature=temperature,
        top_p=top_p, max_tokens=max_tokens, max_total_tokens=max_total_tokens, seed=seed, limit=limit,
        skip_bad_rows=skip_bad_rows, shuffle_seed=shuffle_seed, key=key,
    )
    with _front_door(addr, local, model) as door:
        reply = door.submit(request)
        job = reply.job
        announce(job, "evaluating" if reply.created else "already known (same key): evaluating")
        follow(door, job.id, timeout)
        reply = door.stub.EvaluateJob(opb.EvaluateJobRequest(job_id=job.id, ks=ks), timeout=600)
    evaluation = json.loads(reply.evaluation_json)
    written = evaluate.write_evaluation(evaluation, _url(out), reply.evaluation_json)
    print_evaluation(evaluation)
    console.print(f"evaluation: {written['json']}  report: {written['markdown']}")
    if json_out:
        print(json.dumps(evaluate.summary(evaluation)))


def _evaluate_finished_job(job: str, results_root: str, ks: list[int], out: str, json_out: bool) -> None:
    """`--job`: the same evaluation, computed here from the job's Parquet results."""
    from recipe.select import job_url
    from services.common.errors import ServiceError

    url = job_url(job, results_root)
    try:
        if results.manifest_exists(url) and results.read_manifest(url).get("status") != "done":
            raise _refuse("FAILED_PRECONDITION", f"job at {url} has not finished; wait for it (startctl job watch)")
        evaluation = evaluate.evaluate_job(url, ks)
    except ServiceError as exc:
        raise _refuse(exc.code.name, exc.message) from exc
    written = evaluate.write_evaluation(evaluation, _url(out))
    print_evaluation(evaluation)
    console.print(f"evaluation: {written['json']}  report: {written['markdown']}")
    if json_out:
        print(json.dumps(evaluate.summary(evaluation)))


def _rich_table(title: str, header: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title)
    for column in header:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


def print_evaluation(evaluation: dict[str, Any]) -> None:
    """The evaluation's tables, full column names kept when not at a terminal."""
    console.print(
        f"job {evaluation['job_id']} ({evaluation['arm']}, {evaluation['samples']} sample(s) per problem): "
        f"{evaluation['evaluated_problems']} problems scored of {evaluation['problems']}; problem set read as "
        f"{evaluation['format']}, {evaluation['skipped_rows']} row(s) skipped", soft_wrap=True,
    )
    for kind, title in (("source", "scores by source benchmark"), ("task_type", "scores by task type")):
        wide.print(_rich_table(f"{title} (95% bootstrap intervals)", *evaluate.scores_table(evaluation, kind)))
    wide.print(_rich_table("work per episode", *evaluate.work_table(evaluation)))
    console.print(evaluate.FAILED_NOTE, soft_wrap=True)


@app.command("compare")
def compare_cmd(
    a: str = typer.Argument(..., help="Evaluation A's out directory (the baseline)."),
    b: str = typer.Argument(..., help="Evaluation B's out directory (differences are B - A)."),
    out: str = typer.Option("", help="Where compare.md, compare.json, compare.png go (default: runs/compare-<time>)."),
    json_out: bool = typer.Option(False, "--json", help="End with compare.json's object on one line."),
) -> None:
    """Two evaluations of the same problems: per-problem differences B - A, their mean and a
    paired 95% bootstrap interval, overall and by source benchmark."""
    try:
        comparison = comparing.compare(_url(a), _url(b))
    except (FileNotFoundError, ValueError) as exc:  # not an eval directory; different problems
        raise _refuse("FAILED_PRECONDITION", str(exc)) from exc
    target = _url(out) if out else str(new_run_dir("compare"))
    written = comparing.write_comparison(comparison, target)
    console.print(f"A: {a} (job {comparison['a']['job_id']}, {comparison['a']['arm']})  "
                  f"B: {b} (job {comparison['b']['job_id']}, {comparison['b']['arm']}); "
                  f"{comparison['matched_problems']} problems matched", soft_wrap=True)
    wide.print(_rich_table("paired differences B - A (95% paired bootstrap intervals)",
                           *comparing.comparison_table(comparison)))
    console.print(f"comparison: {written['markdown']}  plot: {written['plot']}")
    if json_out:
        print(json.dumps(comparison))
