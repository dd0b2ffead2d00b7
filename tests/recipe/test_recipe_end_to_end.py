"""The recipe after the jobs, end to end on the embedded default, as a user runs it.

Two jobs of `startctl demo` (greedy and hint-infer on the micro base model: real vLLM, gVisor,
Celery over Redis) -> `dataset build hint-rft` -> review in the page in a real browser
(one edit, one drop) and as files (a tool-code edit run again in the real gVisor sandbox)
-> `dataset export` -> a few DeepSpeed steps on the export -> `eval --job` of both arms
-> `eval compare`.

What this shows is plumbing, not the paper's effect: the base model's greedy answers are
right on easy problems and wrong on hard ones by construction (models/micro-base/README.md),
so which problems are kept follows from its corpus. The effects are
tests/recipe/test_micro_recipe.py's.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from review_browser import click, css, open_trajectory, replace_text, save, span_index_of, text_of, wait_for

from recipe.dataset import Dataset, review_of
from recipe.review import sandbox_runner
from recipe.review_page import serve
from startctl.stack import MICRO_MODEL

pytestmark = [pytest.mark.slow, pytest.mark.runsc]
STARTCTL = [sys.executable, "-m", "startctl"]


def run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([*STARTCTL, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"startctl {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def last_json(done: subprocess.CompletedProcess) -> dict[str, Any]:
    return json.loads(done.stdout.strip().splitlines()[-1])


def demo_jobs(tmp_path: Path) -> dict[str, Path]:
    run(["demo", "--limit", "4", "--timeout", "600"], tmp_path, timeout=900)
    (jobs_dir,) = (tmp_path / "runs").glob("demo-*/jobs")
    jobs = {json.loads((m).read_text())["arm"]: m.parent for m in jobs_dir.glob("*/manifest.json")}
    assert set(jobs) == {"greedy", "hint-infer"}
    return jobs


def test_two_jobs_become_a_reviewed_exported_trained_on_dataset_and_an_evaluated_comparison(
    tmp_path: Path, browser: Any, start_service: Any
) -> None:
    jobs = demo_jobs(tmp_path)
    ds = tmp_path / "hint-rft"

    # Build.
    built = last_json(run(["dataset", "build", "hint-rft", "--greedy", str(jobs["greedy"]), "--hint-infer",
                           str(jobs["hint-infer"]), "--out", str(ds), "--json"], tmp_path))
    assert built["problems_seen"] == 4 and built["kept"] >= 2, built
    first, second = (t.id for t in Dataset.load(str(ds)).trajectories[:2])

    # Review in the page: one edit, one drop, saved; the real sandbox re-runs edited code.
    sandbox = start_service("sandbox")
    with serve(str(ds), runner=sandbox_runner(sandbox)) as server:
        browser.get(server.url)
        wait_for(browser, lambda d: len(css(d, "#trajectory-list tbody tr")) == built["kept"], "the list")
        open_trajectory(browser, first)
        last_model = span_index_of(browser, "model", last=True)
        replace_text(browser, last_model, "\nChecked with Python: the answer is \\boxed{edited}.")
        open_trajectory(browser, second)
        css(browser, "#drop-reason")[0].send_keys("reads the output twice")
        click(browser, css(browser, "#drop-button")[0])
        wait_for(browser, lambda d: text_of(d, "#staged-count") == "2 staged changes", "two staged changes")
        save(browser, reviewer="e2e")
    card = (ds / "README.md").read_text()
    assert "+Checked with Python: the answer is \\boxed{edited}." in card and "reads the output twice" in card

    # And as files: change the code of a tool call; the real gVisor sandbox runs it again.
    # The code the model wrote is one tool_code span; the closing fence the platform appended, another.
    spans = Dataset.load(str(ds)).get(first).spans
    output_index = next(i for i, s in enumerate(spans) if s.type == "tool_output")
    code = next(s.text for s in reversed(spans[:output_index]) if s.type == "tool_code" and s.text != "```")
    run(["dataset", "review", str(ds), "--export", str(tmp_path / "files")], tmp_path)
    (path,) = [p for p in (tmp_path / "files").glob("*.txt") if p.read_text().startswith(f"# trajectory {first}\n")]
    path.write_text(path.read_text().replace(code, "print(6 * 7, 'from gVisor')\n", 1))
    run(["dataset", "review", str(ds), "--apply", str(tmp_path / "files"), "--by", "e2e", "--sandbox", sandbox],
        tmp_path)
    reviewed = Dataset.load(str(ds)).get(first)
    assert not review_of(reviewed).flags
    assert reviewed.spans[output_index].text == "\n```output\n42 from gVisor\n```\n"
    assert "42 from gVisor" in (ds / "README.md").read_text()

    # Export, and train a few steps on it.
    exported = last_json(run(["dataset", "export", str(ds), "--format", "start", "--json"], tmp_path))
    assert exported["exported"] == built["kept"] - 1 and exported["left_out"] == {"dropped in review": 1}
    run(["train", "sft", "--config", "micro", "--nproc", "1", "--set", f"model={MICRO_MODEL}",
         "--set", f"data=[{exported['url']}]", "--set", f"output_dir={tmp_path / 'sft'}", "--set", "packing=false",
         "--set", "global_batch=1", "--set", "epochs=1", "--set", "save_every=100", "--set", "precision=fp32"],
        tmp_path, timeout=900)
    steps = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == exported["exported"] and all(math.isfinite(s["train/loss"]) for s in steps)
    assert (tmp_path / "sft" / "final" / "config.json").is_file()

    # Evaluate both arms from their results, and compare them.
    for arm in ("greedy", "hint-infer"):
        summary = last_json(run(["eval", "--job", str(jobs[arm]), "--out", str(tmp_path / f"eval-{arm}"), "--json"],
                                tmp_path))
        assert summary["overall"]["n"] == 4
        assert list((tmp_path / f"eval-{arm}" / "plots").glob("*.png"))
    compared = run(["eval", "compare", str(tmp_path / "eval-greedy"), str(tmp_path / "eval-hint-infer"), "--out",
                    str(tmp_path / "compare"), "--json"], tmp_path)
    assert "pass@1" in compared.stdout and (tmp_path / "compare" / "compare.png").stat().st_size > 0
