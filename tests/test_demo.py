"""The README's main job, `startctl demo`, end to end on the embedded default: every
service a separate process over gRPC, Celery over a real Redis, vLLM CPU with the micro
model, gVisor for the tool calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.episode import from_json
from start.v1 import common_pb2 as pb


@pytest.mark.slow
@pytest.mark.runsc
def test_demo_runs_greedy_and_hint_infer_and_shows_a_hint_and_a_sandboxed_tool_call(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "startctl", "demo", "--limit", "3", "--timeout", "600", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "greedy vs hint-infer" in done.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary) == {"greedy", "hint-infer"}
    assert summary["greedy"]["failed"] == summary["hint-infer"]["failed"] == 0
    assert (run_dir / "demo.png").stat().st_size > 0
    # --json: the last line is the figures, the same as the summary's.
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["problems"] == 3 and Path(figures["run_dir"]).resolve() == run_dir.resolve()
    assert figures["greedy_accuracy"] == summary["greedy"]["accuracy"]
    assert figures["hint_accuracy"] == summary["hint-infer"]["accuracy"]

    episodes = [from_json(json.loads(line)) for line in (run_dir / "episodes.jsonl").read_text().splitlines()]
    hinted = [e for e in episodes if e.options.hints_enabled]
    assert len(hinted) == 3 and all(e.status == pb.EPISODE_STATUS_DONE for e in episodes)
    # At least one injected hint followed by code whose output came back from the sandbox.
    hint, output = pb.SPAN_KIND_HINT, pb.SPAN_KIND_TOOL_OUTPUT
    kinds = [[s.kind for s in e.spans] for e in hinted]
    assert any(hint in k and output in k and k.index(hint) < k.index(output) for k in kinds)
    outputs = [s.text for e in hinted for s in e.spans if s.kind == pb.SPAN_KIND_TOOL_OUTPUT]
    assert all(o.startswith("\n```output\n") for o in outputs)
    # The greedy arm never gets a hint.
    assert not any(s.kind == pb.SPAN_KIND_HINT for e in episodes if not e.options.hints_enabled for s in e.spans)
    # The transcript marks who wrote what.
    assert "[hint:" in done.stdout and "[sandbox]" in done.stdout
