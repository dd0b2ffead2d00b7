"""The trainer silences exactly DeepSpeed's deprecated torch.distributed calls, and no other warning.

The real calls: torch's own deprecated collectives on a one-process gloo group, as
DeepSpeed's ZeRO-3 makes them (tests/training/test_distributed_runs.py checks a whole
two-process run's stderr).
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.distributed as dist

from startctl.processes import free_port
from training.library_warnings import quiet_library_deprecations


@pytest.fixture(scope="module")
def gloo_group():
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _collectives() -> None:
    dist.all_gather_into_tensor(torch.zeros(2), torch.ones(2))
    dist.reduce_scatter_tensor(torch.zeros(2), torch.ones(2))


def test_torch_warns_on_the_collectives_deepspeed_calls(gloo_group) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _collectives()
    assert sorted(str(w.message).split("`")[1] for w in caught if w.category is FutureWarning) == [
        "torch.distributed.all_gather_into_tensor", "torch.distributed.reduce_scatter_tensor"]


def test_quieted_those_two_and_nothing_else(gloo_group) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_deprecations()
        _collectives()
        # Another deprecation from the same torch module, and the same words from our code, still show.
        warnings.warn_explicit("`torch.distributed.all_gather` is deprecated", FutureWarning,
                               "c10d_logger.py", 83, module="torch.distributed.c10d_logger")
        warnings.warn("`torch.distributed.all_gather_into_tensor` is deprecated", FutureWarning, stacklevel=1)
        warnings.warn("a config key is ignored", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == [
        "`torch.distributed.all_gather` is deprecated",
        "`torch.distributed.all_gather_into_tensor` is deprecated",
        "a config key is ignored",
    ]
