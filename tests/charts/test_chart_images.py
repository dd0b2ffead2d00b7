"""Every image the chart runs is built by skaffold from a Dockerfile in this repository
(Redis excepted, pinned), skaffold sets each image value from its artifact, and every
Dockerfile is multi-stage, on pinned bases, and runs as the chart's non-root user."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_objects import ROOT, chart_defaults, containers, load_values, workloads

SKAFFOLD = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
THIRD_PARTY = {"redis"}  # the one image the chart runs that this repository does not build


def _pointer(doc: Any, path: str) -> tuple[Any, str]:
    """The container and final key of a JSON pointer (RFC 6901) into doc."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]
    for part in parts[:-1]:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc, parts[-1]


def skaffold_with(profile: str | None) -> dict[str, Any]:
    """skaffold.yaml with a profile's JSON patches applied, as `skaffold -p` does."""
    config = copy.deepcopy(SKAFFOLD)
    if profile is None:
        return config
    (spec,) = [p for p in config["profiles"] if p["name"] == profile]
    for patch in spec["patches"]:
        parent, key = _pointer(config, patch["path"])
        if patch["op"] == "remove":
            del parent[int(key) if isinstance(parent, list) else key]
        elif isinstance(parent, list) and key == "-":
            parent.append(patch["value"])
        elif isinstance(parent, list):
            parent[int(key)] = patch["value"]
        else:
            parent[key] = patch["value"]
    return config


# Which skaffold profile deploys which shipped values file.
PROFILES = {"default": None, "cpu": "cpu", "gpu": "gpu"}


def _repository(image: str) -> str:
    return image.rsplit(":", 1)[0]


@pytest.mark.parametrize("values_name", PROFILES)
def test_every_image_the_chart_runs_is_a_skaffold_artifact(render, values_name: str) -> None:
    config = skaffold_with(PROFILES[values_name])
    artifacts = {a["image"] for a in config["build"]["artifacts"]}
    release = config["deploy"]["helm"]["releases"][0]
    values: dict[str, Any] = load_values(values_name)
    for values_file in release["valuesFiles"]:
        assert (ROOT / values_file).is_file(), values_file
    used = {_repository(c["image"]) for w in workloads(render(values)) for c in containers(w)}
    assert used - artifacts == THIRD_PARTY
    # Nothing built goes unused: every artifact is deployed by this profile's values.
    assert artifacts <= used


@pytest.mark.parametrize("profile", [None, "cpu", "gpu"])
def test_every_artifact_builds_from_an_existing_dockerfile_and_target(profile: str | None) -> None:
    for artifact in skaffold_with(profile)["build"]["artifacts"]:
        dockerfile = ROOT / artifact["context"] / artifact["docker"]["dockerfile"]
        assert dockerfile.is_file(), f"{artifact['image']}: {dockerfile} missing"
        target = artifact["docker"].get("target")
        if target:
            stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text(), re.M | re.I)
            assert target in stages, f"{artifact['image']}: no stage {target} in {dockerfile}"


@pytest.mark.parametrize("profile", [None, "gpu"])
def test_skaffold_sets_each_image_value_from_its_own_artifact(profile: str | None) -> None:
    config = skaffold_with(profile)
    templates = config["deploy"]["helm"]["releases"][0]["setValueTemplates"]
    defaults = chart_defaults()
    set_values = set()
    for artifact in config["build"]["artifacts"]:
        key = re.sub(r"\W", "_", artifact["image"])
        # One artifact may feed several workloads (start-services: hints, scoring, orchestrator).
        repo_values = [k for k, v in templates.items() if v == f"{{{{.IMAGE_REPO_{key}}}}}"]
        assert repo_values, f"{artifact['image']}: sets no image value"
        for repo_value in repo_values:
            prefix = repo_value.removesuffix(".repository")
            assert templates[f"{prefix}.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}@{{{{.IMAGE_DIGEST_{key}}}}}"
            # The value it sets is the chart's own image value for that artifact.
            node = defaults
            for part in prefix.split("."):
                node = node[part]
            assert node["repository"] == artifact["image"]
            set_values.add(prefix)
    # Every image value skaffold sets comes from an artifact this profile builds.
    assert {k.rsplit(".", 1)[0] for k in templates} == set_values


def test_skaffold_uses_the_v4_schema_with_cpu_and_gpu_profiles() -> None:
    assert SKAFFOLD["apiVersion"].startswith("skaffold/v4")
    assert SKAFFOLD["kind"] == "Config"
    assert {p["name"] for p in SKAFFOLD["profiles"]} == {"cpu", "gpu"}
    assert skaffold_with("gpu")["build"]["artifacts"][0]["docker"]["target"] == "gpu"
    assert SKAFFOLD["build"]["artifacts"][0]["docker"]["target"] == "cpu"


DOCKERFILES = sorted({a["docker"]["dockerfile"] for p in (None, "gpu") for a in skaffold_with(p)["build"]["artifacts"]})


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_is_multi_stage_on_pinned_bases_and_runs_as_the_charts_user(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    bases = [args.get(b.strip("${}"), b) for b in re.findall(r"^FROM\s+(\S+)", text, re.M)]
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M | re.I)
    assert len(bases) >= 2, "single-stage build"
    for base in bases:
        if base in stages:
            continue  # built on an earlier stage
        name, _, tag = base.partition(":")
        assert re.search(r"\d+\.\d+", tag), f"{dockerfile}: base {base} is not pinned to a version"
        assert tag != "latest"
    # Each final image switches to uid 10001, the id the chart's securityContext runs as.
    finals = [part for part in re.split(r"^FROM\s", text, flags=re.M)[1:] if "ENTRYPOINT" in part]
    assert finals
    for part in finals:
        assert "USER 10001:10001" in part
        assert 'ENTRYPOINT ["startctl"]' in part


def test_dockerignore_keeps_local_state_out_but_the_sources_in() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "runs"} <= ignored
    for needed in ("services", "startctl", "protos", "training", "models", "pyproject.toml", "README.md"):
        assert needed not in ignored


def test_chart_default_image_names_match_the_dockerfile_they_come_from() -> None:
    for artifact in skaffold_with(None)["build"]["artifacts"]:
        folder = Path(artifact["docker"]["dockerfile"]).parent.name
        assert artifact["image"] == f"start-{folder}"


def test_services_image_can_reach_the_object_stores_the_chart_accepts_for_results() -> None:
    """results.url may be s3:// or gs://: the orchestrator's image needs fsspec's s3fs and gcsfs."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {re.split(r"[<>=!~\[ ]", req)[0] for req in extras["cloud"]} >= {"s3fs", "gcsfs"}
    text = (ROOT / "services" / "Dockerfile").read_text()
    (install,) = re.findall(r"^RUN pip install (.+)$", text, re.M)
    assert install == '-e ".[cloud]"'
    assert "s3fs, gcsfs" in text  # the build imports them, so a missing one fails the build
