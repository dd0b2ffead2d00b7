"""values.schema.json rejects what would break an install, naming the key at fault, and
stays in step with values.yaml, whose every key is documented with a `# --` comment."""

from __future__ import annotations

import json
import re

import helm_python as helm
import pytest
from chart_objects import CHART, VALUES_FILES, chart_defaults, load_values

SCHEMA = json.loads((CHART / "values.schema.json").read_text())

# Bad values an operator might plausibly write, and what the error must point at.
BAD_VALUES = {
    "gpu switch as a string": ({"generation": {"gpu": {"enabled": "yes"}}}, "/generation/gpu/enabled"),
    "typo in a key": ({"workers": {"concurency": 4}}, "concurency"),
    "port out of range": ({"hints": {"port": 70000}}, "/hints/port"),
    "zero tensor parallelism": ({"generation": {"engine": {"tensorParallelSize": 0}}}, "tensorParallelSize"),
    "gpu memory above 1": ({"generation": {"engine": {"gpuMemoryUtilization": 1.5}}}, "gpuMemoryUtilization"),
    "unknown dtype": ({"generation": {"engine": {"dtype": "fp8"}}}, "/generation/engine/dtype"),
    "relative model path": ({"generation": {"model": {"path": "models/m"}}}, "/generation/model/path"),
    "sandbox without runtime class": ({"sandbox": {"runtimeClass": {"name": ""}}}, "/sandbox/runtimeClass/name"),
    "hint library not yaml": ({"hints": {"library": {"files": {"notes.txt": "x"}}}}, "notes.txt"),
    "bad memory quantity": (
        {"scoring": {"resources": {"limits": {"memory": "lots"}}}},
        "/scoring/resources/limits/memory",
    ),
    "zero training nodes": ({"training": {"nodes": 0}}, "/training/nodes"),
    "bad log format": ({"logFormat": "xml"}, "/logFormat"),
    "redis url without scheme": ({"redis": {"external": {"url": "redis-host:6379"}}}, "/redis/external/url"),
    "keda queues from before the per-queue workers": (
        {"workers": {"keda": {"queues": ["start.generate"]}}},
        "/workers/keda",
    ),
    "unknown worker queue": ({"workers": {"queues": {"embed": {"concurrency": 4}}}}, "embed"),
    "queue without threads": (
        {"workers": {"queues": {"tool": {"concurrency": 0}}}},
        "/workers/queues/tool/concurrency",
    ),
    "queue resources without limits": (
        {"workers": {"queues": {"score": {"resources": {"requests": {"cpu": 1, "memory": "1Gi"}}}}}},
        "/workers/queues/score/resources",
    ),
    "results url not an object store": ({"results": {"url": "https://bucket.example.com/x"}}, "/results/url"),
    "results read-only volume": (
        {"results": {"persistence": {"accessModes": ["ReadOnlyMany"]}}},
        "/results/persistence/accessModes",
    ),
    "no episodes in flight": ({"orchestrator": {"jobs": {"maxInFlight": 0}}}, "/orchestrator/jobs/maxInFlight"),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_schema_rejects_bad_values_naming_the_key(chart: helm.Chart, case: str) -> None:
    values, where = BAD_VALUES[case]
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.render(values, name="start", namespace="start")
    assert where in str(caught.value)


def test_schema_rejects_a_bad_values_file_as_helm_install_would(chart: helm.Chart, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("generation:\n  gpu:\n    enabled: true\n  engine:\n    tensorParallelSize: -2\n")
    with pytest.raises(helm.HelmValuesError, match="tensorParallelSize"):
        chart.validate_schema(helm.values_from_yaml(bad.read_text()))


def test_redis_off_without_an_external_url_fails_with_what_to_set(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match="set redis.external.url or redis.external.existingSecret"):
        chart.render({"redis": {"enabled": False}}, name="start", namespace="start")


@pytest.mark.parametrize("values_name", VALUES_FILES)
def test_shipped_values_files_pass_the_schema(chart: helm.Chart, values_name: str) -> None:
    chart.validate_schema(chart.merge_values(load_values(values_name)))


def _declared(schema: dict, path: tuple[str, ...]) -> dict | None:
    """The schema node that declares the object at path, or None for free-form maps."""
    node = schema
    for key in path:
        props = node.get("properties", {})
        if key not in props:
            return None
        node = props[key]
        if "$ref" in node:
            node = _resolve(node["$ref"])
        elif "allOf" in node:
            # The shared service block fills in the `true` placeholders of its users.
            node = {"properties": {**node["properties"], **_resolve(node["allOf"][0]["$ref"])["properties"]}}
        if node is True:
            return None
    return node


def _resolve(ref: str) -> dict:
    node = SCHEMA
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _keys(values: dict, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for key, value in values.items():
        found.append((*path, key))
        if isinstance(value, dict) and _declared(SCHEMA, (*path, key)) is not None:
            found.extend(_keys(value, (*path, key)))
    return found


def test_every_key_in_values_yaml_is_declared_in_the_schema() -> None:
    defaults = chart_defaults()
    for path in _keys(defaults):
        parent = _declared(SCHEMA, path[:-1]) if path[:-1] else SCHEMA
        if parent is None or "properties" not in parent:
            continue  # inside a free-form map (nodeSelector, resources, training.config)
        assert path[-1] in parent["properties"], f"{'.'.join(path)} is not in values.schema.json"


def test_every_key_the_schema_declares_has_a_default_in_values_yaml() -> None:
    def walk(node: dict, values: dict, path: tuple[str, ...]) -> None:
        for key in node.get("properties", {}):
            assert key in values, f"{'.'.join((*path, key))} is declared in the schema but not in values.yaml"
            child = _declared(SCHEMA, (*path, key))
            if child is not None and isinstance(values[key], dict):
                walk(child, values[key], (*path, key))

    walk(SCHEMA, chart_defaults(), ())


def test_every_declared_key_in_values_yaml_has_a_doc_comment() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][\w.-]*):", line)
        if not match or line.lstrip().startswith("#"):
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = tuple(k for _, k in stack)
        stack.append((indent, key))
        parent = _declared(SCHEMA, path) if path else SCHEMA
        if parent is None or key not in parent.get("properties", {}):
            continue
        node = _declared(SCHEMA, (*path, key))
        if node is not None and "properties" in node:
            continue  # a block heading; its keys carry the comments
        above = lines[number - 1].strip()
        where = f"values.yaml line {number + 1}: {'.'.join((*path, key))}"
        assert above.startswith("# --"), f"{where} has no '# --' comment"


def test_a_release_name_too_long_for_the_training_cronjob_fails_with_what_to_do(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match="longer than Kubernetes' 52 characters"):
        chart.render({"fullnameOverride": "x" * 45}, name="start", namespace="start")
