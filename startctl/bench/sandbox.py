"""`startctl bench sandbox`: what a warm sandbox execution costs against the alternatives.

Measured in one run, on the same machine, so the ratios hold on a noisy host (service and
bare interpreter alternate sample by sample):

- a trivial program and a sympy-importing one, through the sandbox service (a real
  `startctl serve sandbox` process over gRPC, warm pool), through a cold `runsc do`, and
  through a bare `python -c` of the same interpreter (no isolation at all);
- executions per second through the service with every sandbox busy.

Floors (issue 4): warm trivial median <= 1.5x the bare interpreter; a warm
sympy-importing program faster than the bare interpreter importing sympy.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from services.common.channels import channel
from start.v1 import sandbox_pb2, sandbox_pb2_grpc
from startctl.processes import free_port, service_process, wait_ready

TRIVIAL = "print(1)"
SYMPY = "import sympy\nx = sympy.Symbol('x')\nprint(sympy.factor(x**2 - 1))"
SYMPY_OUT = "(x - 1)*(x + 1)"
WARM_SAMPLES = 30
# A bare `import sympy` takes about a second: fewer pairs, same alternation.
BARE_SYMPY_SAMPLES = 10
COLD_SAMPLES = 5
POOL_SIZE = 2
THROUGHPUT_CALLS = 60


def _stats(samples_s: list[float]) -> dict:
    ordered = sorted(samples_s)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": statistics.median(ordered) * 1000, "p95_ms": p95 * 1000, "n": len(ordered)}


def _run_process(argv: list[str], expect: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if expect not in done.stdout:
        raise RuntimeError(f"{argv[:3]} failed: {done.stderr[-500:]}")
    return elapsed


def _run_service(stub: sandbox_pb2_grpc.SandboxServiceStub, code: str, expect: str) -> float:
    started = time.perf_counter()
    reply = stub.Execute(sandbox_pb2.ExecuteRequest(code=code, timeout_s=30), timeout=60)
    elapsed = time.perf_counter() - started
    if reply.status != sandbox_pb2.EXECUTION_STATUS_OK or expect not in reply.stdout:
        raise RuntimeError(f"sandbox execution failed: {reply}")
    return elapsed


def _warm_against_bare(
    stub: sandbox_pb2_grpc.SandboxServiceStub, code: str, expect: str, samples: int
) -> tuple[dict, dict]:
    """Service and bare interpreter sample by sample, alternating, so that the load of a
    shared machine weighs on both alike."""
    warm, bare = [], []
    for _ in range(samples):
        warm.append(_run_service(stub, code, expect))
        bare.append(_run_process([sys.executable, "-c", code], expect))
    return _stats(warm), _stats(bare)


def _throughput(stub: sandbox_pb2_grpc.SandboxServiceStub) -> float:
    def one(_: int) -> int:
        return stub.Execute(sandbox_pb2.ExecuteRequest(code=TRIVIAL), timeout=60).status

    started = time.perf_counter()
    with ThreadPoolExecutor(POOL_SIZE * 2) as threads:
        statuses = list(threads.map(one, range(THROUGHPUT_CALLS)))
    elapsed = time.perf_counter() - started
    if any(s != sandbox_pb2.EXECUTION_STATUS_OK for s in statuses):
        raise RuntimeError(f"throughput run had failures: {statuses}")
    return THROUGHPUT_CALLS / elapsed


def run(console: Console) -> dict:
    runsc = shutil.which("runsc")
    if runsc is None:
        raise SystemExit("startctl bench sandbox needs gVisor's runsc: apt-get install -y runsc")
    python = sys.executable
    figures: dict = {"pool_size": POOL_SIZE}
    with tempfile.TemporaryDirectory(prefix="start-bench-sandbox-") as tmp:
        port = free_port()
        env = {"START_SANDBOX_STATE_DIR": tmp, "START_SANDBOX_POOL_SIZE": str(POOL_SIZE)}
        server = service_process("sandbox", port, env, log_dir=Path(tmp)).start()
        addr = f"127.0.0.1:{port}"
        try:
            console.print("starting the sandbox service (warm pool)...")
            wait_ready(server, addr, timeout_s=300)
            with channel(addr) as ch:
                stub = sandbox_pb2_grpc.SandboxServiceStub(ch)
                for _ in range(4):  # connection and first-fork warm-up
                    _run_service(stub, TRIVIAL, "1")
                console.print("measuring warm executions against the bare interpreter...")
                figures["warm_trivial"], figures["bare_trivial"] = _warm_against_bare(
                    stub, TRIVIAL, "1", WARM_SAMPLES
                )
                figures["warm_sympy"], figures["bare_sympy"] = _warm_against_bare(
                    stub, SYMPY, SYMPY_OUT, BARE_SYMPY_SAMPLES
                )
                # Calls with no pause between them: the next child's fork is not hidden
                # behind other work (informational; the floors use the alternated pairs).
                figures["warm_trivial_back_to_back"] = _stats(
                    [_run_service(stub, TRIVIAL, "1") for _ in range(WARM_SAMPLES)]
                )
                console.print("measuring executions per second with every sandbox busy...")
                figures["warm_executions_per_s"] = _throughput(stub)
        finally:
            server.stop()
        console.print("measuring cold runsc do...")
        cold = [runsc, "--root", f"{tmp}/cold", "--network=none", "--ignore-cgroups", "do", python, "-c"]
        figures["cold_trivial"] = _stats([_run_process([*cold, TRIVIAL], "1") for _ in range(COLD_SAMPLES)])
        figures["cold_sympy"] = _stats([_run_process([*cold, SYMPY], SYMPY_OUT) for _ in range(COLD_SAMPLES)])

    figures["ratio_warm_trivial_vs_bare"] = figures["warm_trivial"]["median_ms"] / figures["bare_trivial"]["median_ms"]
    figures["ratio_warm_sympy_vs_bare"] = figures["warm_sympy"]["median_ms"] / figures["bare_sympy"]["median_ms"]
    figures["ratio_cold_trivial_vs_warm"] = figures["cold_trivial"]["median_ms"] / figures["warm_trivial"]["median_ms"]
    figures["ratio_back_to_back_vs_bare"] = (
        figures["warm_trivial_back_to_back"]["median_ms"] / figures["bare_trivial"]["median_ms"]
    )
    figures["floors_met"] = bool(
        figures["ratio_warm_trivial_vs_bare"] <= 1.5 and figures["ratio_warm_sympy_vs_bare"] < 1.0
    )
    _print(console, figures)
    return figures


def _print(console: Console, figures: dict) -> None:
    table = Table(title="sandbox: latency per execution (ms)")
    for column in ("program", "path", "median", "p95", "n"):
        table.add_column(column, justify="right" if column in ("median", "p95", "n") else "left")
    for program in ("trivial", "sympy"):
        for path, label in (("warm", "service, warm pool (gRPC)"), ("cold", "cold runsc do"),
                            ("bare", "bare python -c (no isolation)")):
            row = figures[f"{path}_{program}"]
            table.add_row(program, label, f"{row['median_ms']:.1f}", f"{row['p95_ms']:.1f}", str(row["n"]))
            if (path, program) == ("warm", "trivial"):
                row = figures["warm_trivial_back_to_back"]
                table.add_row(
                    program, "service, warm, calls back to back", f"{row['median_ms']:.1f}",
                    f"{row['p95_ms']:.1f}", str(row["n"]),
                )
    console.print(table)
    console.print(
        f"warm trivial / bare: {figures['ratio_warm_trivial_vs_bare']:.2f}x (floor <= 1.5x); "
        f"warm sympy / bare sympy: {figures['ratio_warm_sympy_vs_bare']:.2f}x (floor < 1x); "
        f"cold runsc do / warm: {figures['ratio_cold_trivial_vs_warm']:.1f}x; "
        f"back-to-back warm / bare: {figures['ratio_back_to_back_vs_bare']:.2f}x"
    )
    console.print(
        f"executions per second, {figures['pool_size']} sandboxes all busy: "
        f"{figures['warm_executions_per_s']:.1f}"
    )
    console.print(f"floors met: {figures['floors_met']}")
