"""Worker settings that cannot work are refused when the worker starts, saying what to change."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.orchestrator.celery_app import QUEUE_TOOL, WorkerSettings
from start.v1 import common_pb2 as pb


def test_a_chain_that_could_outlive_the_steps_time_limit_is_refused() -> None:
    with pytest.raises(ValidationError, match="chain_s"):
        WorkerSettings(chain_s=400, rpc_timeout_s=300, step_soft_time_limit_s=600)
    assert WorkerSettings(chain_s=0, rpc_timeout_s=300, step_soft_time_limit_s=310).chain_s == 0


def test_a_worker_takes_inline_only_the_steps_of_the_queues_it_consumes() -> None:
    tools_only = WorkerSettings(queues=[QUEUE_TOOL])
    assert tools_only.consumes(pb.ACTION_KIND_RUN_TOOL)
    assert not tools_only.consumes(pb.ACTION_KIND_GENERATE)
    assert WorkerSettings().consumes(pb.ACTION_KIND_FINISH)
