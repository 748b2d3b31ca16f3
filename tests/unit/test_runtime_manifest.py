"""runtime.yaml: a full recipe parses into the Manifest the store persists; each kind of
mistake is refused with the field named."""

from __future__ import annotations

import os

import pytest

from node_agent.isolation.plan import DEFAULT_PATH
from node_agent.runtimes.manifest import (
    Manifest,
    ManifestError,
    Requirements,
    RuntimeMount,
    parse_manifest,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FULL = """
name: python-3.11-ml
description: Python with ML bits
setup: build/setup.sh
mounts:
  - {source: site-packages, target: /runtimes/py/site-packages, readonly: true}
  - {source: ., target: /runtimes/py}
environment:
  PYTHONPATH: /runtimes/py/site-packages
  PATH: /runtimes/py/bin:${PATH}
packages: [numpy==2.0, pandas]
requirements: {architectures: [amd64], gpu: false}
test: python3 -c 'import numpy'
"""


def test_full_manifest() -> None:
    m = parse_manifest(FULL)
    assert m == Manifest(
        name="python-3.11-ml",
        language="python",  # from the name
        version="3.11",
        description="Python with ML bits",
        mounts=(
            RuntimeMount(".", "/runtimes/py"),  # parents first
            RuntimeMount("site-packages", "/runtimes/py/site-packages"),
        ),
        environment=(
            ("PATH", "/runtimes/py/bin:${PATH}"),
            ("PYTHONPATH", "/runtimes/py/site-packages"),
        ),
        packages=("numpy==2.0", "pandas"),
        requirements=Requirements(("amd64",), False),
        setup="build/setup.sh",
        test="python3 -c 'import numpy'",
    )
    assert dict(m.job_env())["PATH"] == f"/runtimes/py/bin:{DEFAULT_PATH}"
    assert Manifest.from_dict(m.to_dict()) == m
    assert m.smoke_command() == "python3 -c 'import numpy'"


def test_minimal_manifest_and_default_smoke_command() -> None:
    m = parse_manifest("name: openjdk-21\n")
    assert (m.language, m.version, m.mounts, m.setup) == ("openjdk", "21", (), "")
    assert m.smoke_command() == "openjdk --version"


def test_example_recipe_parses() -> None:
    path = os.path.join(REPO, "examples", "runtimes", "python-3.11-demo", "runtime.yaml")
    with open(path, "rb") as f:
        m = parse_manifest(f.read())
    assert m.name == "python-3.11-demo"
    assert m.setup == "setup.sh"
    assert dict(m.environment)["PYTHONPATH"] == m.mounts[0].target


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
        ("language: python\n", "name is required"),
        ("name: Python-3\n", "name: runtime spec 'Python-3' must be lowercase"),
        ("name: python-3\nversion: 3.10\n", "must be quoted"),
        ("name: python-3\nmount: []\n", "unknown keys: mount"),
        ("name: python-3\nmounts: [{source: /etc, target: /rt}]\n", "is absolute"),
        ("name: python-3\nmounts: [{source: ../x, target: /rt}]\n", "contains '..'"),
        ("name: python-3\nmounts: [{source: x, target: rt}]\n", "absolute path inside the job"),
        ("name: python-3\nmounts: [{source: x, target: /usr/lib/py}]\n", "inside /usr"),
        ("name: python-3\nmounts: [{source: x, target: /work}]\n", "inside /work"),
        ("name: python-3\nmounts: [{source: x, target: /}]\n", "job's root"),
        ("name: python-3\nmounts: [{source: x, target: /a/../b}]\n", "contains '..'"),
        (
            "name: python-3\nmounts: [{source: x, target: /rt}, {source: y, target: /rt/}]\n",
            "mounted twice",
        ),
        ("name: python-3\nmounts: [{source: x, target: /rt, readonly: false}]\n", "readonly"),
        ("name: python-3\nenvironment: {1BAD: x}\n", "not a valid variable name"),
        ("name: python-3\nenvironment: [A]\n", "environment must be a mapping"),
        ("name: python-3\nsetup: /abs/setup.sh\n", "is absolute"),
        ("name: python-3\nsetup: ../setup.sh\n", "contains '..'"),
        ("name: python-3\nrequirements: {gpu: maybe}\n", "true or false"),
        ("name: python-3\nrequirements: {cpus: 2}\n", "requirements must be"),
        ("name: python-3\npackages: numpy\n", "packages must be a list"),
    ],
)
def test_bad_manifests_are_explained(text: str, fragment: str) -> None:
    with pytest.raises(ManifestError) as e:
        parse_manifest(text)
    assert fragment in str(e.value)


def test_oversized_manifest_refused() -> None:
    with pytest.raises(ManifestError, match="larger than"):
        parse_manifest("name: python-3\n#" + "x" * (70 << 10))
