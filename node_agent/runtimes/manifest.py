"""A runtime recipe's `runtime.yaml`, parsed once into a frozen `Manifest`.

The manifest says what the runtime is (name, language, version), what a job using it sees
(read-only mounts of the runtime's files at fixed paths, environment), and how it is built
(an optional setup script run in a sandboxed job). Everything that could go wrong in a
recipe is refused here with a message that names the field.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from node_agent.isolation.plan import DEFAULT_PATH, SYSTEM_DIRS
from node_agent.runtimes.spec import SpecError, parse_spec

MANIFEST_FILE = "runtime.yaml"
MAX_MANIFEST_BYTES = 64 << 10
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Paths inside a job that its private root already uses; a runtime may not cover them.
RESERVED_TARGETS = (*SYSTEM_DIRS, "/work", "/tmp", "/proc", "/dev", "/sys", "/volumes")
KEYS = {
    "name",
    "language",
    "version",
    "description",
    "mounts",
    "environment",
    "packages",
    "requirements",
    "setup",
    "test",
}


class ManifestError(ValueError):
    """The recipe is not usable; the message names the field and the problem."""


@dataclass(frozen=True)
class RuntimeMount:
    source: str  # relative to the runtime's files ("." = all of them)
    target: str  # absolute path inside the job


@dataclass(frozen=True)
class Requirements:
    architectures: tuple[str, ...] = ()
    gpu: bool = False


@dataclass(frozen=True)
class Manifest:
    name: str
    language: str
    version: str
    description: str = ""
    mounts: tuple[RuntimeMount, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    packages: tuple[str, ...] = ()
    requirements: Requirements = field(default_factory=Requirements)
    setup: str = ""  # script relative to the recipe folder
    test: str = ""  # shell command run by TestRuntime

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["environment"] = dict(self.environment)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        return cls(
            name=d["name"],
            language=d["language"],
            version=d["version"],
            description=d["description"],
            mounts=tuple(RuntimeMount(**m) for m in d["mounts"]),
            environment=tuple(sorted(d["environment"].items())),
            packages=tuple(d["packages"]),
            requirements=Requirements(
                tuple(d["requirements"]["architectures"]), d["requirements"]["gpu"]
            ),
            setup=d["setup"],
            test=d["test"],
        )

    def job_env(self) -> tuple[tuple[str, str], ...]:
        """The environment a job gets; `${PATH}` stands for the job's default PATH."""
        return tuple((k, v.replace("${PATH}", DEFAULT_PATH)) for k, v in self.environment)

    def smoke_command(self) -> str:
        return self.test or f"{self.language} --version"


def clean_relative(field_name: str, raw: str, *, allow_dot: bool = False) -> str:
    """A relative path inside the recipe/runtime, normalised; no absolute paths, no '..'."""
    if not isinstance(raw, str) or not raw:
        raise ManifestError(f"{field_name} must be a non-empty relative path")
    if "\x00" in raw:
        raise ManifestError(f"{field_name} {raw!r} contains a NUL byte")
    if raw.startswith("/"):
        raise ManifestError(f"{field_name} {raw!r} is absolute; give a path inside the runtime")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ManifestError(f"{field_name} {raw!r} contains '..'; it must stay inside the runtime")
    if not parts:
        if allow_dot:
            return "."
        raise ManifestError(f"{field_name} {raw!r} names the runtime folder itself")
    return "/".join(parts)


def _target(where: str, raw: Any) -> str:
    if not isinstance(raw, str) or not raw.startswith("/"):
        raise ManifestError(f"{where}.target must be an absolute path inside the job")
    if ".." in raw.split("/") or "\x00" in raw:
        raise ManifestError(f"{where}.target {raw!r} contains '..'")
    norm = posixpath.normpath(raw)
    if norm == "/":
        raise ManifestError(f"{where}.target may not be the job's root")
    for r in RESERVED_TARGETS:
        if norm == r or norm.startswith(r + "/"):
            raise ManifestError(
                f"{where}.target {norm!r} is inside {r}, which the job's root already uses; "
                f"mount runtimes elsewhere, e.g. /runtimes/NAME"
            )
    return norm


def _str(where: str, value: Any, *, required: bool = False) -> str:
    if value is None:
        if required:
            raise ManifestError(f"{where} is required")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ManifestError(f"{where} must be a string")
    text = str(value)
    if required and not text:
        raise ManifestError(f"{where} is required")
    return text


def _mounts(raw: Any) -> tuple[RuntimeMount, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ManifestError("mounts must be a list of {source, target, readonly}")
    out: list[RuntimeMount] = []
    seen: set[str] = set()
    for i, m in enumerate(raw):
        where = f"mounts[{i}]"
        if not isinstance(m, dict):
            raise ManifestError(f"{where} must be a mapping with source and target")
        unknown = set(m) - {"source", "target", "readonly"}
        if unknown:
            raise ManifestError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        if m.get("readonly", True) is not True:
            raise ManifestError(
                f"{where}.readonly must be true: a runtime is shared by every job using it"
            )
        source = clean_relative(f"{where}.source", m.get("source", ""), allow_dot=True)
        target = _target(where, m.get("target"))
        if target in seen:
            raise ManifestError(f"{where}.target {target!r} is mounted twice")
        seen.add(target)
        out.append(RuntimeMount(source, target))
    # parents before children when the job's root is built
    return tuple(sorted(out, key=lambda m: m.target.count("/")))


def _environment(raw: Any) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ManifestError("environment must be a mapping of NAME: value")
    out = []
    for k, v in raw.items():
        if not isinstance(k, str) or not ENV_NAME.match(k):
            raise ManifestError(f"environment: {k!r} is not a valid variable name")
        out.append((k, _str(f"environment.{k}", v)))
    return tuple(sorted(out))


def _requirements(raw: Any) -> Requirements:
    if raw is None:
        return Requirements()
    if not isinstance(raw, dict) or set(raw) - {"architectures", "gpu"}:
        raise ManifestError("requirements must be a mapping with architectures and gpu")
    archs = raw.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise ManifestError("requirements.architectures must be a list of names (amd64, arm64)")
    gpu = raw.get("gpu", False)
    if not isinstance(gpu, bool):
        raise ManifestError("requirements.gpu must be true or false")
    return Requirements(tuple(archs), gpu)


def _version(raw: Any) -> str:
    if isinstance(raw, float):
        raise ManifestError(
            f"version {raw!r} must be quoted: YAML reads 3.10 as the number 3.1; "
            'write version: "3.10"'
        )
    return _str("version", raw)


def parse_manifest(text: bytes | str) -> Manifest:
    if len(text) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{MANIFEST_FILE} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ManifestError(f"{MANIFEST_FILE} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{MANIFEST_FILE} must be a mapping (name, language, version, ...)")
    unknown = set(data) - KEYS
    if unknown:
        raise ManifestError(
            f"{MANIFEST_FILE} has unknown keys: {', '.join(sorted(map(str, unknown)))}"
        )
    name = _str("name", data.get("name"), required=True)
    try:
        spec = parse_spec(name)
    except SpecError as e:
        raise ManifestError(f"name: {e}") from None
    packages = data.get("packages") or []
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        raise ManifestError("packages must be a list of strings")
    setup = data.get("setup")
    return Manifest(
        name=spec.name,
        language=_str("language", data.get("language")) or spec.language,
        version=_version(data.get("version")) or spec.version,
        description=_str("description", data.get("description")),
        mounts=_mounts(data.get("mounts")),
        environment=_environment(data.get("environment")),
        packages=tuple(packages),
        requirements=_requirements(data.get("requirements")),
        setup=clean_relative("setup", setup) if setup else "",
        test=_str("test", data.get("test")),
    )
