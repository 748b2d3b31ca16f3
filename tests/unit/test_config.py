"""The CLI configuration file: good files parse into the expected nodes, bad ones fail with a
message that names the file and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from joblet.config import (
    DEFAULT_ADDRESS,
    ClientConfig,
    ConfigError,
    NodeConfig,
    TlsFiles,
    load_config,
    parse_config,
    split_host_port,
)

GOOD = """
version: 1
default: local
nodes:
  local:
    address: "127.0.0.1:50051"
  sock:
    address: "unix:/run/joblet/agent.sock"
  remote:
    address: "node-a.example:50051"
    cert: certs/client.crt
    key: certs/client.key
    ca: /etc/joblet/ca.crt
    server_name: joblet-agent
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_good_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    config = load_config(path, environ={})
    assert config.source == path
    assert config.default == "local"
    assert [n.name for n in config.nodes] == ["local", "sock", "remote"]
    assert config.node() == NodeConfig(name="local", address="127.0.0.1:50051")
    remote = config.node("remote")
    assert remote.tls == TlsFiles(
        cert=tmp_path / "certs/client.crt",
        key=tmp_path / "certs/client.key",
        ca=Path("/etc/joblet/ca.crt"),
    )
    assert remote.server_name == "joblet-agent"
    assert not remote.is_local
    assert config.node("sock").is_unix and config.node("sock").is_local
    assert config.node("local").is_local


def test_unknown_node_lists_configured_ones(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), environ={})
    with pytest.raises(ConfigError, match=r"unknown node 'nope'.*local, sock, remote"):
        config.node("nope")


def test_single_node_needs_no_default(tmp_path: Path) -> None:
    text = "version: 1\nnodes:\n  only:\n    address: localhost:7000\n"
    config = parse_config(text, tmp_path / "c.yaml")
    assert config.default == "only"
    assert config.node().is_local


def test_missing_default_file_gives_builtin_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(None, environ={})
    assert config.source is None
    assert config.node().address == DEFAULT_ADDRESS
    assert config.node().tls is None


def test_env_variable_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert load_config(None, environ={"JOBLET_CONFIG": str(path)}).source == path


def test_explicit_path_wins_over_env(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    config = load_config(path, environ={"JOBLET_CONFIG": str(tmp_path / "other.yaml")})
    assert config.source == path


@pytest.mark.parametrize("use_env", [False, True])
def test_explicit_file_must_exist(tmp_path: Path, use_env: bool) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match="no such configuration file"):
        if use_env:
            load_config(None, environ={"JOBLET_CONFIG": str(missing)})
        else:
            load_config(missing, environ={})


def test_default_file_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".config" / "joblet").mkdir(parents=True)
    (tmp_path / ".config" / "joblet" / "config.yaml").write_text(GOOD)
    config = load_config(None, environ={})
    assert isinstance(config, ClientConfig)
    assert config.default == "local"


BAD = [
    ("version: 1\nnodes: [\n", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping"),
    ("nodes:\n  a:\n    address: localhost:1\n", "version must be 1"),
    ("version: 2\nnodes:\n  a:\n    address: localhost:1\n", "version must be 1"),
    ("version: true\nnodes:\n  a:\n    address: localhost:1\n", "version must be 1"),
    ("version: 1\n", "nodes must be a non-empty mapping"),
    ("version: 1\nnodes: {}\n", "nodes must be a non-empty mapping"),
    ("version: 1\nnodes:\n  a: localhost:1\n", "node 'a': expected a mapping"),
    ("version: 1\nnodes:\n  a: {}\n", "address is required"),
    ("version: 1\nnodes:\n  a:\n    address: localhost\n", "expected host:port"),
    ("version: 1\nnodes:\n  a:\n    address: localhost:0\n", "port must be 1-65535"),
    ("version: 1\nnodes:\n  a:\n    address: localhost:http\n", "port must be 1-65535"),
    ("version: 1\nnodes:\n  a:\n    address: '::1:5'\n", r"IPv6 addresses as \[addr\]:port"),
    ("version: 1\nnodes:\n  a:\n    address: unix:rel.sock\n", "must be absolute"),
    (
        "version: 1\nnodes:\n  a:\n    address: h:1\n    cert: c\n    key: k\n",
        r"needs cert, key and ca; missing \['ca'\]",
    ),
    ("version: 1\nnodes:\n  a:\n    address: h:1\n    cert: 5\n", "cert must be a file path"),
    (
        "version: 1\nnodes:\n  a:\n    address: h:1\n    server_name: x\n",
        "server_name only applies",
    ),
    ("version: 1\nnodes:\n  a:\n    address: h:1\n    adress: x\n", r"unknown keys \['adress'\]"),
    ("version: 1\nnode: {}\n", r"unknown keys \['node'\]"),
    (
        "version: 1\nnodes:\n  a: {address: 'h:1'}\n  b: {address: 'h:2'}\n",
        "say which is the default",
    ),
    ("version: 1\ndefault: c\nnodes:\n  a: {address: 'h:1'}\n", "default 'c' is not one of"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path, environ={})
    assert str(path) in str(caught.value)


def test_unreadable_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path, environ={})  # a directory


@pytest.mark.parametrize(
    ("address", "expected"),
    [("h:1", ("h", 1)), ("[::1]:50051", ("::1", 50051)), ("10.0.0.1:65535", ("10.0.0.1", 65535))],
)
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address) == expected


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1:1", True),
        ("127.3.4.5:1", True),
        ("localhost:1", True),
        ("[::1]:1", True),
        ("10.0.0.1:1", False),
        ("example.com:1", False),
        ("[fe80::1]:1", False),
        ("unix:/tmp/a.sock", True),
    ],
)
def test_is_local(address: str, local: bool) -> None:
    assert NodeConfig(name="n", address=address).is_local is local
