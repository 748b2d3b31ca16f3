"""Finds the control-plane binaries that ``hack/k8s/build.sh`` builds into a per-machine cache, at
the versions pinned in ``hack/k8s/versions.env``; can run that script when some are missing."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

HACK_DIR = Path(__file__).resolve().parents[2] / "hack" / "k8s"
TOOLS = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")


class BinariesMissing(RuntimeError):
    """Some binaries are not built yet (run ``make k8s-bins``)."""


@dataclass(frozen=True)
class Versions:
    """The pins of versions.env."""

    kubernetes: str
    etcd: str
    helm: str


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the five binaries."""

    bin_dir: Path
    versions: Versions

    @property
    def etcd(self) -> Path:
        return self.bin_dir / "etcd"

    @property
    def kube_apiserver(self) -> Path:
        return self.bin_dir / "kube-apiserver"

    @property
    def kube_controller_manager(self) -> Path:
        return self.bin_dir / "kube-controller-manager"

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    @property
    def helm(self) -> Path:
        return self.bin_dir / "helm"

    def missing(self) -> list[str]:
        return [t for t in TOOLS if not os.access(self.bin_dir / t, os.X_OK)]


def read_versions(path: Path = HACK_DIR / "versions.env") -> Versions:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("\"'")
    return Versions(
        kubernetes=values["K8S_VERSION"], etcd=values["ETCD_VERSION"], helm=values["HELM_VERSION"]
    )


def default_bin_dir(versions: Versions) -> Path:
    """Same rule as build.sh: $JOBLET_K8S_CACHE or $XDG_CACHE_HOME/joblet/k8s-<version>, /bin."""
    cache = os.environ.get("JOBLET_K8S_CACHE")
    if cache:
        return Path(cache) / "bin"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "joblet" / f"k8s-{versions.kubernetes}" / "bin"


def locate_binaries(*, build: bool = False) -> Binaries:
    """The binaries; with ``build`` runs build.sh first when some are missing (slow when cold)."""
    versions = read_versions()
    override = os.environ.get("JOBLET_K8S_BIN")
    bins = Binaries(Path(override) if override else default_bin_dir(versions), versions)
    if bins.missing() and build and not override:
        subprocess.run([str(HACK_DIR / "build.sh")], check=True)
    missing = bins.missing()
    if missing:
        raise BinariesMissing(
            f"missing in {bins.bin_dir}: {', '.join(missing)}; run `make k8s-bins`"
        )
    return bins
