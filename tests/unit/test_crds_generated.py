"""The committed CRD YAML in crds/ must be exactly what crds/generate.py writes: an edit by hand
(or a generator change without regenerating) would ship a schema nobody reviewed as code."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import yaml

CRDS = Path(__file__).resolve().parents[2] / "crds"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("joblet_crds_generate", CRDS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def test_committed_yaml_equals_generator_output() -> None:
    gen = _generator()
    outputs = gen.outputs()
    assert {o.path.name for o in outputs} == {
        f"joblet.io_{plural}.yaml"
        for plural in ("jobs", "workflows", "networks", "volumes", "runtimes", "jobletnodes")
    }
    for out in outputs:
        assert out.path.read_text() == out.text, f"{out.path.name}: run python crds/generate.py"
    assert gen.main(["--check"]) == 0


def test_every_rule_has_a_sentence_for_a_person() -> None:
    def rules(node: object) -> list[dict[str, str]]:
        found: list[dict[str, str]] = []
        if isinstance(node, dict):
            found.extend(node.get("x-kubernetes-validations", []))
            for value in node.values():
                found.extend(rules(value))
        elif isinstance(node, list):
            for value in node:
                found.extend(rules(value))
        return found

    total = 0
    for path in sorted(CRDS.glob("joblet.io_*.yaml")):
        for rule in rules(yaml.safe_load(path.read_text())):
            total += 1
            message = rule["message"]
            # A sentence naming the field and what to do, in the API server's style (no period).
            assert len(message) >= 20 and not message.endswith("."), (path.name, message)
    assert total >= 20
