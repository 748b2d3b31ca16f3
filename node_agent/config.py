"""The agent's configuration, parsed once from flags into a frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentConfig:
    listen: str = "127.0.0.1:50051"
    state_dir: str = "/var/lib/joblet"
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    job_uid: int = 65532
    job_gid: int = 65532
    stop_grace_s: float = 10.0
    log_segment_bytes: int = 8 << 20
    log_max_bytes: int = 256 << 20
    max_upload_bytes: int = 64 << 20
    max_message_bytes: int = 128 << 20
    pids_max: int = 1024
    tmp_size_mb: int = 256
    cgroup_root: str = "/sys/fs/cgroup"
    cgroup_version: str = ""  # "" = detect
    node_id: str = ""
    # Node registry (issue 5): off unless a kubeconfig or in-cluster credentials are given.
    kubeconfig: str = ""
    in_cluster: bool = False
    node_name: str = ""  # "" = hostname
    node_labels: tuple[tuple[str, str], ...] = ()
    advertise_address: str = ""  # "" = derived from listen
    heartbeat_interval_s: float = 10.0
    reserve_cpu: int = 0
    reserve_memory_mb: int = 0

    @property
    def registry(self) -> bool:
        return bool(self.kubeconfig or self.in_cluster)

    # runtimes: where InstallRuntimeFromGithub fetches BASE/OWNER/REPO/archive/refs/heads/B.tar.gz
    runtime_archive_base: str = "https://github.com"
    runtime_repository: str = ""  # default owner/repo when a request names none
    runtime_setup_timeout_s: float = 900.0
    runtime_setup_memory_mb: int = 2048
    runtime_setup_cpu_percent: int = 200

    default_network: str = "bridge"  # network of jobs that name none
    bridge_cidr: str = ""  # "" = a free /16 chosen once and kept
    isolated_cidr: str = ""

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert or self.tls_key or self.tls_ca)
