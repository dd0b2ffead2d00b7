"""Structured logs for every process: key=value on a console, JSON lines in a cluster.

Logs leave the pod (collectors, dashboards, support tickets), so above debug level they
carry no content: not the prompt, the model's text, the tool's code or its output, and no
secret. `redact_content` enforces it for every log line of every process, whatever a call
site passes: a content field is replaced by its size, and a password in a URL by `***`.
At debug level (`START_LOG_LEVEL=DEBUG`, for a developer on their own data) nothing is cut.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

# Fields that hold problem, model, tool or secret content wherever they are logged.
CONTENT_FIELDS = frozenset({
    "prompt", "question", "text", "completion", "response", "answer", "reference", "hint",
    "code", "stdout", "stderr", "output", "spans", "messages",
    "token", "password", "secret", "authorization", "api_key",
})
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s/]+)@")


def redact_url_passwords(text: str) -> str:
    """`redis://:s3cret@host` -> `redis://:***@host`; the rest unchanged."""
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def redact_content(_logger: Any, _method_name: str, event: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: content fields become their size, URL passwords `***`."""
    for key, value in event.items():
        if key in CONTENT_FIELDS and value is not None:
            size = len(value) if hasattr(value, "__len__") else 1
            event[key] = f"<{size} {'chars' if isinstance(value, str) else 'items'} redacted; DEBUG logs it>"
        elif isinstance(value, str) and "://" in value:
            event[key] = redact_url_passwords(value)
    return event


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s", force=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            *([] if level.upper() == "DEBUG" else [redact_content]),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
