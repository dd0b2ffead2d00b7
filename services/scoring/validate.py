"""Checks on Score and DetectRepetition requests, once, at the edge.

Each failure names the field and what would be valid; the runtime turns it into
INVALID_ARGUMENT. Below this point the graders trust their input.
"""

from __future__ import annotations

from services.common.errors import InvalidArgument, require
from services.scoring.graders import CODE, MATH, MULTIPLE_CHOICE
from services.scoring.scorer import Item
from start.v1 import common_pb2, scoring_pb2

TASK_TYPES = {
    common_pb2.TASK_TYPE_MATH: MATH,
    common_pb2.TASK_TYPE_MULTIPLE_CHOICE: MULTIPLE_CHOICE,
    common_pb2.TASK_TYPE_CODE: CODE,
}


def _check_size(text: str, field: str, limit: int) -> None:
    size = len(text.encode())
    require(size <= limit, field, f"{size} bytes is over the limit of {limit} bytes (START_SCORING_MAX_RESPONSE_BYTES)")


def validate_score(request: scoring_pb2.ScoreRequest, max_batch: int, max_response_bytes: int) -> list[Item]:
    """The request's items, or InvalidArgument naming the first bad field."""
    count = len(request.items)
    require(count > 0, "items", "the batch is empty; send 1 or more items")
    require(
        count <= max_batch, "items", f"{count} items is over the batch limit of {max_batch} (START_SCORING_MAX_BATCH)"
    )
    items = []
    for index, item in enumerate(request.items):
        field = f"items[{index}]"
        task_type = TASK_TYPES.get(item.task_type)
        if task_type is None:
            valid = ", ".join(common_pb2.TaskType.Name(t) for t in TASK_TYPES)
            raise InvalidArgument(f"{field}.task_type", f"{item.task_type} is not one of {valid}")
        _check_size(item.response, f"{field}.response", max_response_bytes)
        _check_size(item.reference, f"{field}.reference", max_response_bytes)
        if task_type == CODE:
            require(len(item.tests) > 0, f"{field}.tests", "a code item needs at least one test")
        items.append(Item(task_type, item.response, item.reference, list(item.tests)))
    return items


def validate_repetition(request: scoring_pb2.RepetitionRequest, max_response_bytes: int) -> str:
    _check_size(request.text, "text", max_response_bytes)
    return request.text
