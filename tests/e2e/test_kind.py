"""Optional backend: the same kind of checks against a kind cluster through pytest-kind, on hosts
where a Docker engine answers. Selected with JOBLET_E2E_CLUSTER=kind; skipped otherwise, with the
reason, never emulated."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest

pytestmark = pytest.mark.kind


def _docker_answers() -> str | None:
    """None when a Docker engine answers, else why not."""
    docker = shutil.which("docker")
    if docker is None:
        return "no `docker` CLI on PATH"
    try:
        res = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    if res.returncode != 0:
        return f"Docker engine does not answer: {res.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="module")
def kind_cluster() -> Any:
    if os.environ.get("JOBLET_E2E_CLUSTER") != "kind":
        pytest.skip("kind backend not selected (set JOBLET_E2E_CLUSTER=kind)")
    reason = _docker_answers()
    if reason is not None:
        pytest.skip(f"JOBLET_E2E_CLUSTER=kind but {reason}")
    pytest_kind = pytest.importorskip("pytest_kind", reason="pip install '.[kind]'")
    cluster = pytest_kind.KindCluster("joblet-e2e")
    cluster.create()
    try:
        yield cluster
    finally:
        cluster.delete()


def test_kind_cluster_serves_the_api(kind_cluster: Any) -> None:
    out = kind_cluster.kubectl("get", "--raw=/readyz")
    assert out.strip() == "ok"
