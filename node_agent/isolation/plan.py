"""Pure translation of a job into a `LaunchPlan`: everything the supervisor and the
isolation checklist need, decided before any side effect.

The plan travels from the agent to the fork server as JSON (over a private socket, never
to disk, since it carries secret values), so it holds only plain data. Keeping it pure
lets unit tests check exactly which mounts, limits and environment a job gets.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Host directories a job sees read-only (if they exist on the host). Symlinked ones
# (merged /usr) are recreated as symlinks instead of bind mounts.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
MIN_SECRET_TO_MASK = 4
HOSTNAME_BAD = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class Mount:
    """One step of building the private root; `target` is a path inside the job root."""

    kind: str  # "bind-ro" | "bind-rw" | "tmpfs" | "symlink"
    target: str
    source: str = ""  # host path (bind), link text (symlink)
    options: str = ""  # tmpfs data, e.g. "size=64m,mode=1777"


@dataclass(frozen=True)
class NetworkPlan:
    """How the job's network namespace is joined to the host, set up by the supervisor from
    the host side before the job continues. Without one the job has loopback only."""

    name: str  # network name ("bridge", "isolated", or a user network)
    bridge: str  # host bridge the job's veth joins
    host_veth: str  # host end of the pair (<= 15 chars)
    address: str  # job address with prefix, e.g. "10.88.0.7/16"
    gateway: str  # default route via, "" for none
    dns: tuple[str, ...] = ()
    peers: bool = True  # False: the bridge port is isolated (no job-to-job traffic)


@dataclass(frozen=True)
class CgroupLimits:
    max_cpu: int = 0
    cpu_cores: str = ""
    max_memory_mb: int = 0
    max_iobps: int = 0
    io_device: tuple[int, int] | None = None
    pids_max: int = 0


@dataclass(frozen=True)
class LaunchPlan:
    uuid: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    mask: tuple[str, ...]  # secret values to mask in output
    hostname: str
    uid: int
    gid: int
    work_dir: str
    rootfs: str  # host mount point of the private root (inside the job's mount ns)
    mounts: tuple[Mount, ...]
    limits: CgroupLimits
    job_dir: str
    cgroup_root: str
    cgroup_version: str
    log_segment_bytes: int
    log_max_bytes: int
    stop_grace: float
    seccomp: bool = True
    network: NetworkPlan | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LaunchPlan:
        d: dict[str, Any] = json.loads(data)
        lim = d["limits"]
        if lim.get("io_device") is not None:
            lim["io_device"] = tuple(lim["io_device"])
        return cls(
            uuid=d["uuid"],
            argv=tuple(d["argv"]),
            env=tuple((k, v) for k, v in d["env"]),
            mask=tuple(d["mask"]),
            hostname=d["hostname"],
            uid=d["uid"],
            gid=d["gid"],
            work_dir=d["work_dir"],
            rootfs=d["rootfs"],
            mounts=tuple(Mount(**m) for m in d["mounts"]),
            limits=CgroupLimits(**lim),
            job_dir=d["job_dir"],
            cgroup_root=d["cgroup_root"],
            cgroup_version=d["cgroup_version"],
            log_segment_bytes=d["log_segment_bytes"],
            log_max_bytes=d["log_max_bytes"],
            stop_grace=d["stop_grace"],
            seccomp=d["seccomp"],
            network=NetworkPlan(**{**d["network"], "dns": tuple(d["network"]["dns"])})
            if d.get("network")
            else None,
            extra=d["extra"],
        )


@dataclass(frozen=True)
class HostLayout:
    """What the host's system directories are: probed once at agent start-up."""

    dirs: tuple[str, ...]  # real directories to bind read-only
    links: tuple[tuple[str, str], ...]  # (path, link text) for symlinked ones


def hostname_for(name: str, uuid: str) -> str:
    label = HOSTNAME_BAD.sub("-", name.lower()).strip("-")[:63].strip("-")
    return label or f"job-{uuid[:8]}"


def root_mounts(layout: HostLayout, host_work: str, tmp_size_mb: int) -> tuple[Mount, ...]:
    """The private root, in the order it must be built (parents before children)."""
    mounts: list[Mount] = [Mount("bind-ro", d, source=d) for d in layout.dirs]
    mounts += [Mount("symlink", path, source=text) for path, text in layout.links]
    mounts += [
        Mount("bind-rw", "/work", source=host_work),
        Mount("tmpfs", "/tmp", options=f"size={tmp_size_mb}m,mode=1777"),
    ]
    return tuple(mounts)


def job_env(
    env: tuple[tuple[str, str], ...],
    secrets: tuple[tuple[str, str], ...],
    *,
    uuid: str,
    hostname: str,
    work_dir: str,
) -> tuple[tuple[str, str], ...]:
    base = {
        "PATH": DEFAULT_PATH,
        "HOME": "/work",
        "HOSTNAME": hostname,
        "JOB_ID": uuid,
        "LANG": "C.UTF-8",
        "PWD": work_dir,
    }
    base.update(dict(env))
    base.update(dict(secrets))
    return tuple(sorted(base.items()))


def mask_values(secrets: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """Secret values long enough to mask without garbling ordinary output, longest first
    (so a secret containing another is masked whole)."""
    vals = {v for _, v in secrets if len(v) >= MIN_SECRET_TO_MASK}
    return tuple(sorted(vals, key=len, reverse=True))
