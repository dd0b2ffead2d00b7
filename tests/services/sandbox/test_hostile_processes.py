"""Hostile programs that go after the sandbox's own processes and limits (issue 14): thread
bombs, stderr floods, other processes' /proc entries (memory, file descriptors), ptrace,
forged reply frames, symlinks planted for the clean-up, and memory spread over many
processes. Each must be contained: the run fails or gets nothing, and the sandbox serves the
next run. Every test runs through `startctl sandbox exec --json` and the gRPC service
(see conftest.py); test_pod_mode.py runs the same programs in pod mode. The programs and
their checks are the soak's catalogue (startctl/bench/hostile.py): a check returns what
escaped, "" when contained."""

from __future__ import annotations

import pytest

from startctl.bench import hostile

pytestmark = pytest.mark.runsc


def test_a_thread_bomb_is_bounded_by_the_process_limit(sandbox):
    result = sandbox.run(hostile.THREAD_BOMB, timeout_s=10)
    assert hostile.check_thread_bomb(result) == ""
    sandbox.still_serving()


def test_a_stderr_flood_is_truncated_with_a_marker(sandbox):
    result = sandbox.run(hostile.STDERR_FLOOD, output_limit=hostile.FLOOD_LIMIT_BYTES, timeout_s=10)
    assert hostile.check_stderr_flood(result) == ""
    sandbox.still_serving()


def test_other_processes_memory_and_file_descriptors_are_out_of_reach(sandbox):
    result = sandbox.run(hostile.PROC_PROBE, timeout_s=20)
    assert hostile.check_proc_probe(result) == ""
    sandbox.still_serving()


def test_ptrace_of_the_fork_server_or_any_other_process_is_refused(sandbox):
    result = sandbox.run(hostile.PTRACE_EVERYONE)
    assert hostile.check_ptrace(result) == ""
    sandbox.still_serving()


def test_a_forged_reply_frame_on_stdout_is_only_output(sandbox):
    result = sandbox.run(hostile.FORGED_FRAME)
    assert hostile.check_forged_frame(result) == ""
    sandbox.still_serving()


def test_processes_together_over_the_memory_limit_are_stopped(sandbox):
    limit = hostile.MEMORY_LIMIT_MB
    over = sandbox.run(hostile.CHILDREN_OVER_THE_LIMIT, memory_mb=limit, timeout_s=30)
    under = sandbox.run(hostile.CHILDREN_UNDER_THE_LIMIT, memory_mb=limit, timeout_s=30)
    assert hostile.check_memory_across_processes(over, under) == ""
    sandbox.still_serving()


def test_symlinks_planted_for_the_clean_up_do_not_steer_it(grpc_sandbox):
    # Run A points links in its scratch directory at the scratch root, the fork server and
    # the parent directory; a clean-up that followed them would delete what is not the
    # run's or fail (then the sandbox is retired and run B would be on a fresh one).
    planted = grpc_sandbox.run(hostile.PLANT_SYMLINKS)
    after = grpc_sandbox.run(hostile.AFTER_SYMLINKS)
    assert hostile.check_planted_symlinks(planted, after) == ""
    grpc_sandbox.still_serving()
