"""Evaluation from a job's real Parquet results: the figures match a hand count per source
benchmark and task type, the files (evaluation.json, .md, plots) are written and readable,
two evaluations compare problem by problem (and different problem sets are refused),
EvaluateJob refuses what it cannot score with the status that says why, and `startctl eval`
runs end to end on the embedded platform."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest
import redis
from typer.testing import CliRunner

from recipe import compare, evaluate, metrics
from services.common.channels import channel
from services.common.errors import InvalidArgument
from services.orchestrator import results
from start.v1 import common_pb2 as pb
from start.v1 import orchestrator_pb2 as opb
from start.v1 import orchestrator_pb2_grpc
from startctl.eval_cmd import app
from startctl.processes import free_port

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[2]
TASK_TYPES = {"math": pb.TASK_TYPE_MATH, "multiple_choice": pb.TASK_TYPE_MULTIPLE_CHOICE}
STATUS = {
    True: pb.EPISODE_STATUS_DONE,
    False: pb.EPISODE_STATUS_DONE,
    "failed": pb.EPISODE_STATUS_FAILED,
    "cancelled": pb.EPISODE_STATUS_CANCELLED,
}

# (problem id, source or None, task type, each sample: True/False (done, correct or not),
# "failed" or "cancelled"); a sample job of K = 4.
SAMPLED = [
    ("p0", "aime", "math", [True, False, False, False]),
    ("p1", "aime", "math", [True, True, True, True]),
    ("p2", "math500", "math", [False, False, False, False]),
    ("p3", "math500", "math", [True, True, False, "failed"]),
    ("p4", None, "multiple_choice", [True, False, "cancelled", False]),
]
# The same problems, greedy (one sample each).
GREEDY = [
    ("p0", "aime", "math", [False]),
    ("p1", "aime", "math", [True]),
    ("p2", "math500", "math", [True]),
    ("p3", "math500", "math", [False]),
    ("p4", None, "multiple_choice", [True]),
]


def episode(job_id: str, index: int, spec: tuple, sample: int) -> pb.Episode:
    problem_id, source, task_type, outcomes = spec
    outcome = outcomes[sample]
    problem = pb.Problem(id=problem_id, question=f"question {problem_id}", task_type=TASK_TYPES[task_type])
    if source is not None:
        problem.metadata["source"] = source
    return pb.Episode(
        id=f"{job_id}-p{index}-s{sample}",
        job_id=job_id,
        problem_index=index,
        sample_index=sample,
        problem=problem,
        status=STATUS[outcome],
        score=pb.Score(correct=outcome is True),
        error="step 2: UNAVAILABLE" if outcome == "failed" else "",
        tool_calls=sample,  # done episodes' mean is checked by hand
        generated_tokens=100 * (sample + 1),
    )


def write_job(
    job_url: str,
    specs: list[tuple],
    arm: str = "sample",
    job_id: str = "job-eval",
    sha256: str = "sha-of-the-set",
    skip: tuple[int, ...] = (),
) -> str:
    """A job's results as the controller writes them (two parts) and its manifest as
    job_submit.manifest_of writes it; `skip`: flat episode numbers left unwritten."""
    samples = len(specs[0][3])
    episodes = [
        episode(job_id, i, spec, s)
        for i, spec in enumerate(specs)
        for s in range(samples)
        if i * samples + s not in skip
    ]
    half = len(episodes) // 2
    results.write_part(job_url, 0, episodes[:half], arm, ["source"])
    results.write_part(job_url, 1, episodes[half:], arm, ["source"])
    results.write_manifest(
        job_url,
        {
            "job_id": job_id,
            "arm": arm,
            "samples": samples,
            "problem_set": "/data/mixed.jsonl",
            "format": "start",
            "problem_set_sha256": sha256,
            "problems": len(specs),
            "episodes": len(specs) * samples,
            "skipped_rows": [{"row": 7, "field": "question", "message": "empty"}],
            "metadata_columns": ["source"],
            "model": "micro-model",
            "hint_library": "math@1",
            "status": "done",
        },
    )
    return job_url


def group(evaluation: dict, kind: str, name: str) -> dict:
    (found,) = [g for g in evaluation["groups"] if g["kind"] == kind and g["name"] == name]
    return found


# --- figures -----------------------------------------------------------------------------------


def test_figures_per_source_and_task_type_match_a_hand_count(tmp_path: Path) -> None:
    evaluation = evaluate.evaluate_job(write_job(str(tmp_path / "job"), SAMPLED), ks=[1, 2, 4])
    overall = group(evaluation, "overall", "overall")
    # Per problem c/n: 1/4, 4/4, 0/4, 2/4 (the failed one wrong), 1/4 (the cancelled one wrong).
    assert overall["n"] == 5 and overall["samples"] == 4
    assert overall["pass@1"] == overall["avg@k"] == pytest.approx((0.25 + 1 + 0 + 0.5 + 0.25) / 5)
    assert overall["pass@k"] == overall["pass@4"] == pytest.approx(4 / 5)
    # pass@2 = 1 - C(4-c, 2)/C(4, 2): c=1 -> 1/2, c=4 -> 1, c=0 -> 0, c=2 -> 5/6.
    assert overall["pass@2"] == pytest.approx((0.5 + 1 + 0 + 5 / 6 + 0.5) / 5)
    assert (overall["episodes"], overall["done"], overall["failed"], overall["cancelled"]) == (20, 18, 1, 1)
    # Done episodes only: samples 0..3 have 0..3 tool calls and 100..400 tokens.
    assert overall["tool_calls_per_episode"] == pytest.approx((5 * 6 - 3 - 2) / 18)
    assert overall["tokens_per_episode"] == pytest.approx((5 * 1000 - 400 - 300) / 18)

    aime, math500 = group(evaluation, "source", "aime"), group(evaluation, "source", "math500")
    assert (aime["n"], aime["pass@1"], aime["pass@k"]) == (2, pytest.approx(0.625), 1.0)
    assert (math500["n"], math500["pass@1"], math500["pass@k"], math500["failed"]) == (2, 0.25, 0.5, 1)
    # A problem without a source is grouped under the format the set was read in.
    unsourced = group(evaluation, "source", "start")
    assert (unsourced["n"], unsourced["pass@1"], unsourced["cancelled"]) == (1, 0.25, 1)
    assert group(evaluation, "task_type", "math")["n"] == 4
    assert group(evaluation, "task_type", "multiple_choice")["pass@k"] == 1.0
    assert [g["kind"] for g in evaluation["groups"]] == ["overall", "source", "source", "source", "task_type",
                                                         "task_type"]

    for g in evaluation["groups"]:
        for key in ("pass@1", "avg@k", "pass@k", "pass@2"):
            low, high = g["ci95"][key]
            assert low <= g[key] + 1e-12 and g[key] <= high + 1e-12
    assert evaluation["bootstrap"] == {
        "resamples": metrics.BOOTSTRAP_RESAMPLES, "seed": metrics.BOOTSTRAP_SEED, "confidence": 0.95,
        "method": evaluation["bootstrap"]["method"],
    }
    assert (evaluation["format"], evaluation["skipped_rows"], evaluation["ks"]) == ("start", 1, [1, 2, 4])
    assert evaluation["job_url"] == str(tmp_path / "job")
    assert evaluate.evaluate_job(str(tmp_path / "job"), ks=[1, 2, 4]) == evaluation, "seeded: the same every time"


def test_greedy_pass_at_1_is_the_accuracy_and_default_ks_are_one(tmp_path: Path) -> None:
    evaluation = evaluate.evaluate_job(write_job(str(tmp_path / "job"), GREEDY, arm="greedy"))
    overall = evaluation["groups"][0]
    assert evaluation["ks"] == [1] and overall["samples"] == 1
    assert overall["pass@1"] == overall["avg@k"] == overall["pass@k"] == pytest.approx(3 / 5)


def test_problems_with_samples_missing_are_left_out_and_counted(tmp_path: Path) -> None:
    # Problem 1's last sample (flat episode 7) is not written yet: a job evaluated mid-run.
    evaluation = evaluate.evaluate_job(write_job(str(tmp_path / "job"), SAMPLED, skip=(7,)))
    assert (evaluation["evaluated_problems"], evaluation["incomplete_problems"]) == (4, 1)
    assert [o["problem_id"] for o in evaluation["outcomes"]] == ["p0", "p2", "p3", "p4"]
    assert evaluation["groups"][0]["episodes"] == 16, "the incomplete problem's episodes are not scored"


def test_a_job_with_nothing_written_evaluates_to_no_problem_and_no_plot(tmp_path: Path) -> None:
    job_url = write_job(str(tmp_path / "job"), SAMPLED, skip=tuple(range(20)))
    evaluation = evaluate.evaluate_job(job_url)
    overall = evaluation["groups"][0]
    assert (overall["n"], overall["pass@1"], overall["ci95"]["pass@1"]) == (0, None, None)
    written = evaluate.write_evaluation(evaluation, str(tmp_path / "eval"))
    assert set(written) == {"json", "markdown"}
    assert "n/a" in Path(written["markdown"]).read_text()


def test_ks_default_to_one_and_the_samples_and_out_of_range_ks_are_refused_naming_the_field() -> None:
    assert evaluate.resolve_ks([], 16) == [1, 16]
    assert evaluate.resolve_ks([8, 1, 8], 16) == [1, 8]
    for bad in ([0], [17]):
        with pytest.raises(InvalidArgument) as refused:
            evaluate.resolve_ks(bad, 16)
        assert refused.value.field == "ks" and "between 1 and 16" in refused.value.message


# --- files -------------------------------------------------------------------------------------


def test_eval_dir_has_the_json_a_markdown_report_with_full_names_and_labelled_pngs(tmp_path: Path) -> None:
    evaluation = evaluate.evaluate_job(write_job(str(tmp_path / "job"), SAMPLED), ks=[1, 2, 4])
    out = tmp_path / "eval"
    written = evaluate.write_evaluation(evaluation, str(out))
    assert json.loads((out / "evaluation.json").read_text()) == evaluation
    for name in ("pass_at_1_by_source", "pass_at_1_by_task_type", "pass_at_k"):
        assert (out / "plots" / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
        assert written[name] == str(out / "plots" / f"{name}.png")
    text = (out / "evaluation.md").read_text()
    for phrase in (
        "source benchmark", "samples per problem (k)", "pass@1 [95% interval]", "avg@4 [95% interval]",
        "pass@4 [95% interval]", "pass@2 [95% interval]", "format read", "rows skipped as bad",
        "failed (counted wrong)", "2000 resamples, seed 0", "](plots/pass_at_k.png)",
    ):
        assert phrase in text, phrase
    assert "| overall " in text and "| aime " in text and "| start " in text
    assert "80.0% [" in text  # pass@4 overall with its interval


def test_eval_summary_has_n_and_each_metric_with_its_interval_per_source_and_overall(tmp_path: Path) -> None:
    summary = evaluate.summary(evaluate.evaluate_job(write_job(str(tmp_path / "job"), SAMPLED)))
    assert set(summary["by_source"]) == {"aime", "math500", "start"}
    for entry in [summary["overall"], *summary["by_source"].values()]:
        assert set(entry) == {"n", "pass@1", "avg@k", "pass@k", "ci95"}
        assert set(entry["ci95"]) == {"pass@1", "avg@k", "pass@k"} and len(entry["ci95"]["pass@k"]) == 2
    assert summary["overall"]["n"] == 5 and summary["samples"] == 4


def test_evaluation_reply_carries_the_figures_and_the_json_as_is(tmp_path: Path) -> None:
    evaluation = evaluate.evaluate_job(write_job(str(tmp_path / "job"), SAMPLED), ks=[1, 2, 4])
    reply = evaluate.to_proto(evaluation)
    assert json.loads(reply.evaluation_json) == evaluation
    assert (reply.samples, list(reply.ks), reply.format, reply.skipped_rows) == (4, [1, 2, 4], "start", 1)
    overall = reply.groups[0]
    assert overall.kind == opb.EVALUATION_GROUP_KIND_OVERALL and overall.n == 5
    assert overall.pass_at_k.value == pytest.approx(0.8)
    low, high = evaluation["groups"][0]["ci95"]["pass@1"]
    assert (overall.pass_at_1.ci_low, overall.pass_at_1.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert [p.k for p in overall.pass_at] == [1, 2, 4]
    assert (overall.failed, overall.cancelled) == (1, 1)
    kinds = [g.kind for g in reply.groups]
    assert kinds.count(opb.EVALUATION_GROUP_KIND_SOURCE) == 3 and kinds.count(opb.EVALUATION_GROUP_KIND_TASK_TYPE) == 2


# --- compare -----------------------------------------------------------------------------------


def eval_dir(tmp_path: Path, name: str, specs: list[tuple], arm: str, **job: object) -> str:
    evaluation = evaluate.evaluate_job(write_job(str(tmp_path / f"{name}-job"), specs, arm=arm, **job))
    evaluate.write_evaluation(evaluation, str(tmp_path / name))
    return str(tmp_path / name)


def test_compare_pairs_problems_and_gives_the_mean_difference_with_a_paired_interval(tmp_path: Path) -> None:
    a = eval_dir(tmp_path, "greedy", GREEDY, "greedy", job_id="job-a")
    b = eval_dir(tmp_path, "sample", SAMPLED, "sample", job_id="job-b")
    comparison = compare.compare(a, b)
    assert comparison["matched_problems"] == 5 and comparison["ks"] == [1]
    assert (comparison["a"]["job_url"], comparison["b"]["job_id"]) == (str(tmp_path / "greedy-job"), "job-b")
    overall = comparison["groups"][0]["pass@1"]
    # B - A per problem: 0.25-0, 1-1, 0-1, 0.5-0, 0.25-1.
    assert overall["difference"] == pytest.approx((0.25 + 0 - 1 + 0.5 - 0.75) / 5)
    assert (overall["b_better"], overall["a_better"], overall["same"]) == (2, 2, 1)
    low, high = overall["ci95"]
    assert low < overall["difference"] < high
    assert overall["a"] == pytest.approx(0.6) and overall["b"] == pytest.approx(0.4)
    aime = next(g for g in comparison["groups"] if g["name"] == "aime")
    assert aime["n"] == 2 and aime["pass@1"]["difference"] == pytest.approx(0.125)

    out = tmp_path / "cmp"
    compare.write_comparison(comparison, str(out))
    assert json.loads((out / "compare.json").read_text()) == comparison
    assert (out / "compare.png").read_bytes().startswith(PNG_MAGIC)
    text = (out / "compare.md").read_text()
    assert "difference B - A" in text and "95% interval (paired bootstrap)" in text and "problems matched" in text


def test_an_evaluation_compared_with_itself_differs_by_zero(tmp_path: Path) -> None:
    a = eval_dir(tmp_path, "sample", SAMPLED, "sample")
    comparison = compare.compare(a, a)
    assert comparison["ks"] == [1, 4]
    for g in comparison["groups"]:
        for k in (1, 4):
            assert g[f"pass@{k}"]["difference"] == 0 and g[f"pass@{k}"]["ci95"] == [0.0, 0.0]


def test_compare_refuses_different_problem_sets_saying_how_many_matched(tmp_path: Path) -> None:
    a = eval_dir(tmp_path, "a", GREEDY, "greedy")
    b = eval_dir(tmp_path, "b", GREEDY[:3] + [("p9", "aime", "math", [True])], "greedy")
    with pytest.raises(compare.ComparisonError, match="3 problem ids matched, 2 only in A .*p3, p4.*1 only in B"):
        compare.compare(a, b)
    c = eval_dir(tmp_path, "c", GREEDY, "greedy", sha256="another-shuffle")
    with pytest.raises(compare.ComparisonError, match="same 5 problem ids but different problems"):
        compare.compare(a, c)


def test_eval_compare_cli_writes_its_files_and_ends_with_one_json_object(tmp_path: Path) -> None:
    a = eval_dir(tmp_path, "greedy", GREEDY, "greedy")
    b = eval_dir(tmp_path, "sample", SAMPLED, "sample")
    out = tmp_path / "cmp"
    done = CliRunner().invoke(app, ["compare", a, b, "--out", str(out), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output.strip().splitlines()[-1])["matched_problems"] == 5
    assert {p.name for p in out.iterdir()} == {"compare.json", "compare.md", "compare.png"}
    refused = CliRunner().invoke(app, ["compare", a, str(tmp_path / "nothing-here")])
    assert refused.exit_code == 2 and "holds no evaluation.json" in refused.output


def test_eval_refuses_an_unknown_arm_and_a_bad_problem_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "What is 2+2?"}\n{"question": ""}\n')
    for args, expected in (
        (["--problems", str(bad), "--arm", "beam"], "INVALID_ARGUMENT: arm: unknown arm 'beam'"),
        (["--problems", str(bad), "--local"], "INVALID_ARGUMENT: problem_set: row 2 field question: empty"),
    ):
        done = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
        assert done.exit_code == 2, done.output
        assert done.output.strip().startswith(expected) and len(done.output.strip().splitlines()) == 1


# --- EvaluateJob over gRPC -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def front_door(redis_url: str, start_service, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    """A real front door over real Redis (its own database); no peers: no episode runs."""
    url = redis_url.rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(url).flushdb()
    addr = start_service(
        "orchestrator",
        {
            "START_REDIS_URL": url,
            "START_ORCHESTRATOR_RESULTS_URL": str(tmp_path_factory.mktemp("results")),
            "START_HINTS_ADDR": f"127.0.0.1:{free_port()}",
            "START_GENERATION_ADDR": f"127.0.0.1:{free_port()}",
        },
    )
    with channel(addr) as ch:
        yield orchestrator_pb2_grpc.OrchestratorServiceStub(ch)


def test_evaluate_job_says_not_found_invalid_argument_and_failed_precondition_with_what_to_fix(front_door) -> None:  # noqa: ANN001
    with pytest.raises(grpc.RpcError) as unknown:
        front_door.EvaluateJob(opb.EvaluateJobRequest(job_id="job-0123456789abcdef"), timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND and "no job" in unknown.value.details()

    problems = [pb.Problem(id=f"q{i}", question=f"What is {i} + 1?", reference=str(i + 1)) for i in range(2)]
    request = opb.SubmitJobRequest(
        inline=opb.InlineProblems(problems=problems), arm=opb.ARM_SAMPLE, samples=2,
        idempotency_key=f"eval-{uuid.uuid4().hex}",
    )
    job = front_door.SubmitJob(request, timeout=30).job
    for ks in ([0], [3]):
        with pytest.raises(grpc.RpcError) as bad:
            front_door.EvaluateJob(opb.EvaluateJobRequest(job_id=job.id, ks=ks), timeout=10)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad.value.details().startswith("ks: ") and "between 1 and 2" in bad.value.details()

    # No worker runs its episodes: the job is still running.
    with pytest.raises(grpc.RpcError) as running:
        front_door.EvaluateJob(opb.EvaluateJobRequest(job_id=job.id), timeout=10)
    assert running.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "allow_partial" in running.value.details() and "WatchJob" in running.value.details()
    partial = front_door.EvaluateJob(opb.EvaluateJobRequest(job_id=job.id, allow_partial=True), timeout=30)
    assert (partial.problems, partial.incomplete_problems, partial.groups[0].n) == (2, 2, 0)
    assert not partial.groups[0].HasField("pass_at_1"), "nothing scored: no figure, rather than a zero"


# --- end to end ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.runsc
def test_eval_on_the_embedded_platform_prints_scores_by_source_with_intervals(tmp_path: Path) -> None:
    problems = tmp_path / "three.jsonl"
    rows = [json.loads(line) for line in (ROOT / "data/micro/eval.jsonl").read_text().splitlines()[:3]]
    problems.write_text("".join(json.dumps({**r, "source": r["id"].split("-")[0]}) + "\n" for r in rows))

    def run_eval(arm: str, samples: int, out: Path) -> dict:
        command = [sys.executable, "-m", "startctl", "eval", "--problems", str(problems), "--arm", arm,
                   "--samples", str(samples), "--local", "--model", str(ROOT / "models/start-micro"), "--json",
                   "--out", str(out), "--timeout", "600"]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "scores by source benchmark" in done.stdout and "pass@1 [95% interval]" in done.stdout
        return json.loads(done.stdout.strip().splitlines()[-1])

    sampled = run_eval("sample", 2, tmp_path / "sample")
    assert sampled["samples"] == 2 and sampled["overall"]["n"] == 3
    assert set(sampled["by_source"]) == {r["id"].split("-")[0] for r in rows}
    for entry in [sampled["overall"], *sampled["by_source"].values()]:
        assert 0 <= entry["pass@1"] <= entry["pass@k"] <= 1 and entry["pass@1"] == entry["avg@k"]
        low, high = entry["ci95"]["pass@k"]
        assert low <= entry["pass@k"] <= high
    out = tmp_path / "sample"
    assert (out / "evaluation.md").exists() and (out / "plots" / "pass_at_1_by_source.png").exists()
    (job_dir,) = (out / "jobs").iterdir()
    assert json.loads((out / "evaluation.json").read_text())["job_url"] == str(job_dir)

    # Comparing two real evaluations: tests/recipe/test_recipe_end_to_end.py (greedy against hint-infer).
