"""Hostile programs that go after the sandbox's own processes and limits (issue 14): thread
bombs, stderr floods, other processes' /proc entries (memory, file descriptors), ptrace,
forged reply frames, symlinks planted for the clean-up, and memory spread over many
processes. Each must be contained: the run fails or gets nothing, and the sandbox serves the
next run. Every test runs through `startctl sandbox exec --json` and the gRPC service
(see conftest.py); test_pod_mode.py runs the same programs in pod mode."""

from __future__ import annotations

import pytest

from tests.services.sandbox import hostile

pytestmark = pytest.mark.runsc


def test_a_thread_bomb_is_bounded_by_the_process_limit(sandbox):
    result = sandbox.run(hostile.THREAD_BOMB, timeout_s=10)
    hostile.check_thread_bomb(result)
    sandbox.still_serving()


def test_a_stderr_flood_is_truncated_with_a_marker(sandbox):
    result = sandbox.run(hostile.STDERR_FLOOD, output_limit=10_000, timeout_s=10)
    hostile.check_stderr_flood(result, 10_000)
    sandbox.still_serving()


def test_other_processes_memory_and_file_descriptors_are_out_of_reach(sandbox):
    result = sandbox.run(hostile.PROC_PROBE, timeout_s=20)
    hostile.check_proc_probe(result)
    sandbox.still_serving()


def test_ptrace_of_the_fork_server_or_any_other_process_is_refused(sandbox):
    result = sandbox.run(hostile.PTRACE_EVERYONE)
    hostile.check_ptrace(result)
    sandbox.still_serving()


def test_a_forged_reply_frame_on_stdout_is_only_output(sandbox):
    result = sandbox.run(hostile.FORGED_FRAME)
    hostile.check_forged_frame(result)
    sandbox.still_serving()


def test_processes_together_over_the_memory_limit_are_stopped(sandbox):
    result = sandbox.run(hostile.children_holding(6, 100), memory_mb=256, timeout_s=30)
    hostile.check_memory_stopped(result, 256)
    under = sandbox.run(hostile.children_holding(3, 40), memory_mb=256, timeout_s=30)
    assert (under["status"], under["stdout"]) == ("OK", "all children done\n"), under
    sandbox.still_serving()


def test_symlinks_planted_for_the_clean_up_do_not_steer_it(grpc_sandbox):
    # Run A points links in its scratch directory at the scratch root, the fork server and
    # the parent directory; a clean-up that followed them would delete what is not the
    # run's or fail (then the sandbox is retired and run B would be on a fresh one).
    first = grpc_sandbox.run(hostile.PLANT_SYMLINKS)
    assert first["status"] == "OK", first
    assert "planted 5" in first["stdout"], first
    second = grpc_sandbox.run("import os\nprint(os.listdir('.'))\nprint(os.getcwd())\n")
    assert second["status"] == "OK", second
    assert second["stdout"].startswith("[]\n"), second
    assert hostile.run_number(second["stdout"]) == hostile.run_number(first["stdout"]) + 1, (
        "the clean-up failed or reached outside the run: the sandbox was retired"
    )
    grpc_sandbox.still_serving()
