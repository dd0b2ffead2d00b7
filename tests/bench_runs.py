"""Running a benchmark as its users do, for the tests that check its figures and floors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_bench(name: str, cwd: Path, *args: str, **env: str) -> tuple[int, dict]:
    """`startctl bench NAME --json ARGS` in cwd with env on top: (exit status, its last-line
    figures). Exit 1 is a run whose floors were not met, still a run; anything else fails here."""
    done = subprocess.run(
        [sys.executable, "-m", "startctl", "bench", name, "--json", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])
