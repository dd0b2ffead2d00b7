"""Logs above debug carry no prompt, model text, code, tool output or secret, whatever a
call site passes (services/common/logs.py). The end-to-end check, over a real job's logs,
is in tests/services/orchestrator/test_jobs_end_to_end.py."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import sys
from services.common.logs import configure_logging, get_logger
configure_logging(sys.argv[1], "json")
log = get_logger("t")
log.info("step", episode_id="e1", code="print(SECRET_CODE)", output="SECRET_OUTPUT", prompt="SECRET_PROMPT")
log.warning("peer", url="redis://:SECRET_PASSWORD@redis:6379/0", token="SECRET_TOKEN", tokens=12)
log.debug("dev", code="print(SECRET_CODE)")
"""


def log_lines(level: str) -> list[dict]:
    run = subprocess.run([sys.executable, "-c", SCRIPT, level], capture_output=True, text=True, timeout=60, check=True)
    return [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]


def test_info_logs_carry_sizes_not_code_output_prompts_or_secrets() -> None:
    lines = log_lines("INFO")
    text = json.dumps(lines)
    assert "SECRET" not in text, text
    step, peer = lines
    assert step["episode_id"] == "e1", "ids and counts stay"
    assert step["code"] == "<18 chars redacted; DEBUG logs it>"
    assert peer["url"] == "redis://:***@redis:6379/0" and peer["tokens"] == 12
    assert len(lines) == 2, "debug lines are not written at INFO"


def test_debug_logs_show_content_for_a_developer() -> None:
    lines = log_lines("DEBUG")
    assert lines[-1]["code"] == "print(SECRET_CODE)"
    assert lines[0]["output"] == "SECRET_OUTPUT", "DEBUG is the one level that shows content"
