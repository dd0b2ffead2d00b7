"""What several benchmarks share: reading a process's Prometheus metrics while it runs.

A benchmark that needs to know where a worker's time or calls went starts the worker with
a metrics port and reads `/metrics` before and after the part it measures.
"""

from __future__ import annotations

import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from startctl.processes import LocalProcess


def metric_samples(port: int, process: LocalProcess, timeout_s: float = 60) -> list[Sample]:
    """Every sample on 127.0.0.1:port/metrics, waiting for the process to serve them (its
    log's tail says why when it never does)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                text = reply.read().decode()
            break
        except OSError:
            if not process.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"metrics not served on {port}:\n{process.tail()}") from None
            time.sleep(0.5)
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]
