"""Runtime names: the ones people use parse into language/version/variants; bad ones are
refused with a message that says what is wrong."""

from __future__ import annotations

import pytest

from node_agent.runtimes.spec import RuntimeSpec, SpecError, host_architecture, parse_spec


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("python-3.11-ml", RuntimeSpec("python-3.11-ml", "python", "3.11", ("ml",))),
        ("openjdk-21", RuntimeSpec("openjdk-21", "openjdk", "21")),
        ("node-20", RuntimeSpec("node-20", "node", "20")),
        ("python-3.11.4", RuntimeSpec("python-3.11.4", "python", "3.11.4")),
        ("go-1.22rc1", RuntimeSpec("go-1.22rc1", "go", "1.22rc1")),
        (
            "graalvm-ce-21-native-arm64",
            RuntimeSpec(
                "graalvm-ce-21-native-arm64", "graalvm-ce", "21", ("native", "arm64"), "arm64"
            ),
        ),
        ("python-3.12-gpu", RuntimeSpec("python-3.12-gpu", "python", "3.12", ("gpu",))),
        (
            "python-3.11-amd64",
            RuntimeSpec("python-3.11-amd64", "python", "3.11", ("amd64",), "amd64"),
        ),
    ],
)
def test_names_in_use_parse(raw: str, expected: RuntimeSpec) -> None:
    assert parse_spec(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("Python-3.11", "lowercase: did you mean 'python-3.11'"),
        ("python 3.11", "whitespace"),
        ("python", "no version"),
        ("python-ml", "no version"),
        ("3.11", "must start with a language"),
        ("../etc", "path characters"),
        ("python/3.11", "path characters"),
        ("python-3.11-" + "x" * 60, "limit is 63"),
        ("python--3.11", "empty part"),
        ("python-3.11-", "empty part"),
        ("python-3.11_ml", "'_'"),
        ("python-3.11.", "version '3.11.'"),
        ("py3k-x.1", "no version"),
    ],
)
def test_bad_names_are_explained(raw: str, fragment: str) -> None:
    with pytest.raises(SpecError) as e:
        parse_spec(raw)
    assert fragment in str(e.value)


def test_host_architecture_names() -> None:
    assert host_architecture("x86_64") == "amd64"
    assert host_architecture("aarch64") == "arm64"
    assert host_architecture("riscv64") == "riscv64"
