"""The client configuration file: which agents (nodes) the CLI can talk to, and how.

Parsed once, at the edge, into frozen dataclasses; everything after this module trusts them.
The file lives at ``~/.config/joblet/config.yaml`` unless ``--config`` or ``JOBLET_CONFIG`` name
another one::

    version: 1
    default: local
    nodes:
      local:
        address: "127.0.0.1:50051"        # or "unix:/run/joblet/agent.sock"
      gpu-box:
        address: "gpu-box.example:50051"
        cert: ~/.config/joblet/client.crt  # relative paths are relative to this file
        key: ~/.config/joblet/client.key
        ca: ~/.config/joblet/ca.crt
        server_name: joblet-agent          # optional: name expected in the agent's certificate

With no file at the default place, one plaintext node ``127.0.0.1:50051`` is assumed.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CONFIG_ENV = "JOBLET_CONFIG"
DEFAULT_ADDRESS = "127.0.0.1:50051"
DEFAULT_NODE_NAME = "default"
SUPPORTED_VERSION = 1

_NODE_KEYS = frozenset({"address", "cert", "key", "ca", "server_name"})
_TOP_KEYS = frozenset({"version", "default", "nodes"})


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for mutual TLS: our certificate and key, and the CA that signed the agent."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class NodeConfig:
    """One agent the CLI can reach."""

    name: str
    address: str  # "host:port", "[v6]:port" or "unix:/abs/path"
    tls: TlsFiles | None = None
    server_name: str | None = None

    @property
    def is_unix(self) -> bool:
        return self.address.startswith("unix:")

    @property
    def is_local(self) -> bool:
        """True for a unix socket or a loopback host: the only places plaintext is allowed."""
        return self.is_unix or is_loopback_host(split_host_port(self.address)[0])


@dataclass(frozen=True)
class ClientConfig:
    """All configured nodes, and which one is used when ``--node`` is not given."""

    default: str
    nodes: tuple[NodeConfig, ...]
    source: Path | None = None  # None: built-in default, no file

    def node(self, name: str | None = None) -> NodeConfig:
        wanted = name or self.default
        for node in self.nodes:
            if node.name == wanted:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise ConfigError(f"unknown node {wanted!r} (configured: {known})")


def builtin_config() -> ClientConfig:
    """What the CLI uses when no configuration file exists: a plaintext loopback agent."""
    return ClientConfig(
        default=DEFAULT_NODE_NAME,
        nodes=(NodeConfig(name=DEFAULT_NODE_NAME, address=DEFAULT_ADDRESS),),
    )


def default_config_path() -> Path:
    return Path.home() / ".config" / "joblet" / "config.yaml"


def load_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> ClientConfig:
    """Read the configuration: ``path`` (``--config``), else $JOBLET_CONFIG, else the default.

    A file named explicitly must exist; the default file may be absent.
    """
    env = os.environ if environ is None else environ
    explicit = path if path is not None else env.get(CONFIG_ENV) or None
    target = Path(explicit).expanduser() if explicit is not None else default_config_path()
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit is None:
            return builtin_config()
        raise ConfigError(f"{target}: no such configuration file") from None
    except OSError as err:
        raise ConfigError(f"{target}: cannot read: {err.strerror or err}") from None
    return parse_config(text, target)


def parse_config(text: str, source: Path) -> ClientConfig:
    """Parse and validate the text of a configuration file found at ``source``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with version, default and nodes")
    _reject_unknown(data, _TOP_KEYS, f"{source}")
    version = data.get("version")
    if version != SUPPORTED_VERSION or isinstance(version, bool):
        raise ConfigError(f"{source}: version must be {SUPPORTED_VERSION}, got {version!r}")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        raise ConfigError(f"{source}: nodes must be a non-empty mapping of name to node")
    nodes = tuple(_parse_node(name, raw, source, source.parent) for name, raw in raw_nodes.items())
    default = data.get("default")
    if default is None:
        if len(nodes) != 1:
            raise ConfigError(f"{source}: several nodes configured: say which is the default")
        default = nodes[0].name
    if not isinstance(default, str) or default not in raw_nodes:
        raise ConfigError(f"{source}: default {default!r} is not one of the nodes")
    return ClientConfig(default=default, nodes=nodes, source=source)


def _parse_node(name: object, raw: object, source: Path, base: Path) -> NodeConfig:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: node names must be non-empty strings, got {name!r}")
    where = f"{source}: node {name!r}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with an address")
    _reject_unknown(raw, _NODE_KEYS, where)
    address = raw.get("address")
    if not isinstance(address, str) or not address:
        raise ConfigError(f"{where}: address is required (host:port or unix:/path)")
    try:
        validate_address(address)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None
    files = {key: raw.get(key) for key in ("cert", "key", "ca")}
    for key, value in files.items():
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{where}: {key} must be a file path")
    given = sorted(key for key, value in files.items() if value is not None)
    tls: TlsFiles | None = None
    if given and len(given) != len(files):
        missing = sorted(set(files) - set(given))
        raise ConfigError(f"{where}: mutual TLS needs cert, key and ca; missing {missing}")
    if given:
        cert_path, key_path, ca_path = (_resolve(str(files[k]), base) for k in files)
        tls = TlsFiles(cert=cert_path, key=key_path, ca=ca_path)
    server_name = raw.get("server_name")
    if server_name is not None and (not isinstance(server_name, str) or not server_name):
        raise ConfigError(f"{where}: server_name must be a non-empty string")
    if server_name is not None and tls is None:
        raise ConfigError(f"{where}: server_name only applies with cert, key and ca")
    return NodeConfig(name=name, address=address, tls=tls, server_name=server_name)


def _reject_unknown(data: dict[Any, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (allowed: {sorted(allowed)})")


def _resolve(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def validate_address(address: str) -> None:
    """Raise ValueError unless ``address`` is "host:port", "[v6]:port" or "unix:/abs/path"."""
    if address.startswith("unix:"):
        if not address[len("unix:") :].startswith("/"):
            raise ValueError(f"address {address!r}: unix socket path must be absolute")
        return
    split_host_port(address)


def split_host_port(address: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); ValueError for anything else."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f"address {address!r}: expected host:port or unix:/path")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"address {address!r}: write IPv6 addresses as [addr]:port")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"address {address!r}: port must be 1-65535")
    return host, int(port_text)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
