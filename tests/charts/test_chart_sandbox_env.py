"""The sandbox container's environment holds no secret: in pod mode every execution can read
it (gVisor lets any uid read another process's /proc/PID/environ, and its mount namespaces
cannot give the fork servers a /proc of their own; docs/sandbox.md, "Threat model in a pod")."""

from __future__ import annotations

import re

from tests.charts.chart_objects import containers, env_of, named

SECRET_LOOKING = re.compile(r"PASSWORD|TOKEN|SECRET|CREDENTIAL|_KEY$|REDIS_URL|AUTH", re.IGNORECASE)


def test_the_sandbox_container_gets_no_secret_in_its_environment(default_objects) -> None:
    (container,) = containers(named(default_objects, "Deployment", "start-sandbox"))
    assert "envFrom" not in container
    from_secrets = [e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]
    assert from_secrets == []
    env = env_of(container)
    # A *_FILE variable names a mounted file (the auth token, mode 0440: no execution's uid
    # reads it); the path is no secret. Every other secret-looking name is.
    assert [name for name in env if SECRET_LOOKING.search(name) and not name.endswith("_FILE")] == []
    assert all(env[name].startswith("/") for name in env if name.endswith("_FILE")), env
