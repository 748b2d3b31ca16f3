"""Runtime names (`language-version[-variant...]`), parsed and explained.

The names people already use - `python-3.11-ml`, `openjdk-21`, `node-20` - must parse; a
bad one gets a message saying what exactly is wrong with it, because the same rule guards
install, remove and a job's `runtime:` field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SPEC_LEN = 63
EXAMPLE = "LANGUAGE-VERSION[-VARIANT...], e.g. python-3.11-ml, openjdk-21 or node-20"
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9.]*$")
_LANGUAGE = re.compile(r"^[a-z][a-z0-9]*$")
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*[a-z0-9]*$")
ARCHITECTURES = {"amd64": "amd64", "x86_64": "amd64", "arm64": "arm64", "aarch64": "arm64"}


class SpecError(ValueError):
    """A runtime spec that is not a valid name; the message says why."""


@dataclass(frozen=True)
class RuntimeSpec:
    name: str  # the normalised spec: what the runtime is installed and used as
    language: str
    version: str
    variants: tuple[str, ...] = ()
    architecture: str = ""  # from a variant such as amd64/arm64, normalised


def parse_spec(raw: str) -> RuntimeSpec:
    """Parse a runtime spec or raise SpecError explaining the problem."""
    if not raw or not raw.strip():
        raise SpecError(f"runtime spec is empty; give {EXAMPLE}")
    if any(c.isspace() for c in raw):
        raise SpecError(f"runtime spec {raw!r} contains whitespace; give {EXAMPLE}")
    if len(raw) > MAX_SPEC_LEN:
        raise SpecError(
            f"runtime spec {raw[:20]!r}... is {len(raw)} characters long; "
            f"the limit is {MAX_SPEC_LEN}"
        )
    if "/" in raw or "\\" in raw or ".." in raw:
        raise SpecError(
            f"runtime spec {raw!r} contains path characters ('/', '\\' or '..'); "
            "a runtime is named, not located"
        )
    if raw != raw.lower():
        raise SpecError(f"runtime spec {raw!r} must be lowercase: did you mean {raw.lower()!r}?")
    bad = sorted({c for c in raw if not (c.isascii() and (c.isalnum() or c in ".-"))})
    if bad:
        raise SpecError(
            f"runtime spec {raw!r} contains {''.join(bad)!r}; only lowercase letters, "
            "digits, '.' and '-' are allowed"
        )
    tokens = raw.split("-")
    if any(not t for t in tokens):
        raise SpecError(
            f"runtime spec {raw!r} has an empty part (a leading, trailing or doubled '-')"
        )
    at = next((i for i, t in enumerate(tokens) if t[0].isdigit()), None)
    if at is None:
        raise SpecError(
            f"runtime spec {raw!r} has no version: add one after the language, "
            f"e.g. {tokens[0]}-1.0 ({EXAMPLE})"
        )
    if at == 0:
        raise SpecError(f"runtime spec {raw!r} must start with a language name, not a version")
    for t in tokens[:at]:
        if not _LANGUAGE.match(t):
            raise SpecError(f"runtime spec {raw!r}: language part {t!r} is not a plain word")
    version = tokens[at]
    if not _VERSION.match(version) or version.endswith("."):
        raise SpecError(
            f"runtime spec {raw!r}: version {version!r} should look like 3.11, 21 or 1.22.3"
        )
    variants = tuple(tokens[at + 1 :])
    for v in variants:
        if not _TOKEN.match(v):
            raise SpecError(f"runtime spec {raw!r}: variant {v!r} is not valid")
    arch = next((ARCHITECTURES[v] for v in variants if v in ARCHITECTURES), "")
    return RuntimeSpec(raw, "-".join(tokens[:at]), version, variants, arch)


def host_architecture(machine: str) -> str:
    """`platform.machine()` in the names runtimes use (amd64, arm64)."""
    return ARCHITECTURES.get(machine.lower(), machine.lower())
