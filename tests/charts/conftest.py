"""Fixtures for the chart tests: the chart rendered by real Helm (its Go SDK, through
helm-python) at the values an operator would use. No cluster is involved;
`test_chart_install.py` is the one test that needs one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_objects import CHART, NAMESPACE, RELEASE, Objects, load_values


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


Render = Callable[..., Objects]


@pytest.fixture(scope="session")
def render(chart: helm.Chart) -> Render:
    """Render with values (schema-checked by Helm, as an install would) into objects."""

    def _render(values: dict[str, Any] | None = None) -> Objects:
        manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
        objects = []
        for path, text in sorted(manifests.items()):
            if path.endswith("NOTES.txt"):
                continue
            objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
        return objects

    return _render


@pytest.fixture(scope="session")
def notes(chart: helm.Chart) -> str:
    manifests = chart.render({}, name=RELEASE, namespace=NAMESPACE)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


@pytest.fixture(scope="session")
def default_objects(render: Render) -> Objects:
    return render()


@pytest.fixture(scope="session")
def gpu_objects(render: Render) -> Objects:
    return render(load_values("gpu"))
