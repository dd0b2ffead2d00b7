"""Errors that domain code and servicers raise, each mapped to one gRPC status.

Validation happens once, at the edge (each service's `validate.py`), and raises these;
the shared runtime turns them into the status code with the message, so a client always
learns which field to fix and what would be valid.
"""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """A failure the caller should see with a specific status code and message."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


def require(condition: bool, field: str, problem: str) -> None:
    """Raise InvalidArgument(field, problem) unless condition holds."""
    if not condition:
        raise InvalidArgument(field, problem)
