"""The local control plane: etcd, kube-apiserver (RBAC, client-certificate authentication) and
kube-controller-manager (garbage collector, namespace and service-account controllers) as plain
processes on free loopback ports, with a generated PKI and an admin kubeconfig. ``stop()`` leaves
no process and no directory behind; it also runs at interpreter exit."""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType

from joblet.devcluster import pki
from joblet.devcluster.binaries import Binaries, locate_binaries
from joblet.devcluster.health import Probe, StartupFailed, wait_healthy
from joblet.devcluster.kubeconfig import write_kubeconfig
from joblet.devcluster.ports import free_ports
from joblet.devcluster.process import Daemon, pid_alive, start_daemon, stop_group

DIR_PREFIX = "joblet-cp-"
STATE_FILE = "state.json"
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
)


PORT_RACE_ATTEMPTS = 3


@dataclass(frozen=True)
class ControlPlaneConfig:
    """How to start one control plane."""

    # Loopback by default. Agents in simulated nodes (network namespaces) cannot reach loopback:
    # for them bind to the host's address on their bridge (SimNetwork.gateway) instead.
    bind_address: str = "127.0.0.1"
    extra_sans: tuple[str, ...] = ()
    service_cidr: str = "10.0.0.0/24"
    controllers: tuple[str, ...] = CONTROLLERS
    start_timeout: float = 90.0
    # Detached daemons survive this process (``make cluster-up``); ``base_dir`` None = a temp dir.
    detach: bool = False
    base_dir: Path | None = None


@dataclass(frozen=True)
class ControlPlaneState:
    """A running control plane: where it listens and where its files are."""

    base_dir: Path
    api_url: str
    etcd_url: str
    kubeconfig: Path
    ca_cert: Path
    ca_key: Path
    daemons: tuple[Daemon, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ControlPlaneState:
        raw = json.loads(text)
        return cls(
            base_dir=Path(raw["base_dir"]),
            api_url=raw["api_url"],
            etcd_url=raw["etcd_url"],
            kubeconfig=Path(raw["kubeconfig"]),
            ca_cert=Path(raw["ca_cert"]),
            ca_key=Path(raw["ca_key"]),
            daemons=tuple(
                Daemon(name=d["name"], pid=int(d["pid"]), log=Path(d["log"]))
                for d in raw["daemons"]
            ),
        )


class ControlPlane:
    """Start with ``start()`` or ``with ControlPlane() as cp:``; stop with ``stop()``."""

    def __init__(
        self, config: ControlPlaneConfig | None = None, binaries: Binaries | None = None
    ) -> None:
        self.config = config or ControlPlaneConfig()
        self._binaries = binaries
        self._state: ControlPlaneState | None = None
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    @property
    def state(self) -> ControlPlaneState:
        if self._state is None:
            raise RuntimeError("control plane not started")
        return self._state

    @property
    def binaries(self) -> Binaries:
        if self._binaries is None:
            self._binaries = locate_binaries()
        return self._binaries

    @property
    def kubeconfig(self) -> Path:
        return self.state.kubeconfig

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> ControlPlaneState:
        """Start and wait for health. Ports are chosen free and then bound by the daemons; if
        another process takes one in between, start again on fresh ports."""
        for attempt in range(1, PORT_RACE_ATTEMPTS + 1):
            try:
                return self._start_once()
            except StartupFailed as e:
                if "address already in use" not in str(e) or attempt == PORT_RACE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> ControlPlaneState:
        if self._state is not None:
            return self._state
        sweep_stale()
        bins = self.binaries
        cfg = self.config
        base = cfg.base_dir or Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        base.mkdir(parents=True, exist_ok=True)
        (base / "owner.pid").write_text("" if cfg.detach else str(os.getpid()))
        if not cfg.detach:
            atexit.register(self.stop)
        daemons: list[Daemon] = []
        self._state = ControlPlaneState(
            base_dir=base,
            api_url="",
            etcd_url="",
            kubeconfig=base / "admin.kubeconfig",
            ca_cert=base / "pki" / "ca.crt",
            ca_key=base / "pki" / "ca.key",
        )
        try:
            self._state = self._launch(bins, base, daemons)
        except BaseException:
            self._state = ControlPlaneState(
                base_dir=base,
                api_url="",
                etcd_url="",
                kubeconfig=base / "admin.kubeconfig",
                ca_cert=base / "pki" / "ca.crt",
                ca_key=base / "pki" / "ca.key",
                daemons=tuple(daemons),
            )
            self.stop()
            raise
        (base / STATE_FILE).write_text(self._state.to_json())
        return self._state

    def _launch(self, bins: Binaries, base: Path, daemons: list[Daemon]) -> ControlPlaneState:
        cfg = self.config
        host = cfg.bind_address
        pki_dir = base / "pki"
        logs = base / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        etcd_port, peer_port, api_port, kcm_port = free_ports(4, host)
        ca = pki.create_ca(pki_dir)
        hosts = (
            host,
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            _first_service_ip(cfg.service_cidr),
            *cfg.extra_sans,
        )
        api_cert = ca.issue_server(pki_dir, "kube-apiserver", tuple(dict.fromkeys(hosts)))
        kcm_cert = ca.issue_server(pki_dir, "kube-controller-manager", (host, "localhost"))
        sa = pki.create_service_account_key(pki_dir)
        admin = ca.issue_client(pki_dir, "joblet-admin", ("system:masters",))
        kcm_user = ca.issue_client(pki_dir, "system:kube-controller-manager")
        api_url = f"https://{host}:{api_port}"
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        admin_kc = write_kubeconfig(
            base / "admin.kubeconfig",
            server=api_url,
            ca_cert=ca.cert,
            client=admin,
            user="joblet-admin",
        )
        kcm_kc = write_kubeconfig(
            base / "kcm.kubeconfig",
            server=api_url,
            ca_cert=ca.cert,
            client=kcm_user,
            user="system:kube-controller-manager",
        )
        etcd_argv = [
            str(bins.etcd),
            "--name=joblet-dev",
            f"--data-dir={base / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=joblet-dev=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
        api_argv = [
            str(bins.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={host}",
            f"--advertise-address={host}",
            f"--secure-port={api_port}",
            f"--cert-dir={pki_dir}",
            f"--tls-cert-file={api_cert.cert}",
            f"--tls-private-key-file={api_cert.key}",
            f"--client-ca-file={ca.cert}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            f"--service-cluster-ip-range={cfg.service_cidr}",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]
        kcm_argv = [
            str(bins.kube_controller_manager),
            f"--kubeconfig={kcm_kc}",
            f"--authentication-kubeconfig={kcm_kc}",
            f"--authorization-kubeconfig={kcm_kc}",
            f"--bind-address={host}",
            f"--secure-port={kcm_port}",
            f"--tls-cert-file={kcm_cert.cert}",
            f"--tls-private-key-file={kcm_cert.key}",
            f"--controllers={','.join(cfg.controllers)}",
            "--use-service-account-credentials=true",
            f"--root-ca-file={ca.cert}",
            f"--service-account-private-key-file={sa.key}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ]
        # etcd and the API server start together (the API server retries etcd); the
        # controller-manager only once the API server is ready, since it reads its
        # authentication config from the API server at startup and exits if that fails.
        deadline = time.monotonic() + cfg.start_timeout
        for name, argv in (("etcd", etcd_argv), ("kube-apiserver", api_argv)):
            self._spawn(name, argv, logs, daemons)
        etcd_d, api_d = daemons
        wait_healthy(
            [
                Probe(etcd_d, f"{etcd_url}/health"),
                Probe(api_d, f"{api_url}/readyz", ca.cert, admin.cert, admin.key),
            ],
            cfg.start_timeout,
        )
        kcm_d = self._spawn("kube-controller-manager", kcm_argv, logs, daemons)
        wait_healthy(
            [Probe(kcm_d, f"https://{host}:{kcm_port}/healthz", ca.cert)],
            max(deadline - time.monotonic(), 5.0),
        )
        return ControlPlaneState(
            base_dir=base,
            api_url=api_url,
            etcd_url=etcd_url,
            kubeconfig=admin_kc,
            ca_cert=ca.cert,
            ca_key=ca.key,
            daemons=tuple(daemons),
        )

    def _spawn(self, name: str, argv: list[str], logs: Path, daemons: list[Daemon]) -> Daemon:
        daemon, proc = start_daemon(name, argv, logs, detach=self.config.detach)
        daemons.append(daemon)
        self._procs[daemon.pid] = proc
        return daemon

    def stop(self) -> None:
        """Kills the daemons (controller-manager, API server, then etcd) and removes the files."""
        with self._lock:
            state, self._state = self._state, None
            if state is None:
                return
            stop_state(state, self._procs)
            self._procs.clear()
        atexit.unregister(self.stop)

    # --- helpers ----------------------------------------------------------------------------

    def user_kubeconfig(self, name: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig for user ``name`` in ``groups`` (client certificate signed by the CA)."""
        state = self.state
        ca = pki.CertificateAuthority(cert=state.ca_cert, key=state.ca_key)
        pair = ca.issue_client(state.base_dir / "users", name, tuple(groups))
        safe = pair.cert.stem
        return write_kubeconfig(
            state.base_dir / "users" / f"{safe}.kubeconfig",
            server=state.api_url,
            ca_cert=state.ca_cert,
            client=pair,
            user=name,
        )

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Runs the pinned kubectl against this control plane (admin unless ``kubeconfig``)."""
        return subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def helm(
        self, *args: str, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Runs the pinned helm against this control plane with the admin kubeconfig."""
        home = self.state.base_dir / "helm"
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        return subprocess.run(
            [str(self.binaries.helm), *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            env=env,
        )


def stop_state(
    state: ControlPlaneState, procs: dict[int, subprocess.Popen[bytes]] | None = None
) -> None:
    """Stops the daemons of ``state`` in reverse start order and removes its directory."""
    procs = procs or {}
    for daemon in reversed(state.daemons):
        stop_group(daemon.pid, procs.get(daemon.pid))
    shutil.rmtree(state.base_dir, ignore_errors=True)


def sweep_stale(tmp: Path | None = None) -> list[Path]:
    """Removes control-plane temp dirs whose owning process is gone (a run killed by SIGKILL)."""
    removed: list[Path] = []
    root = tmp or Path(tempfile.gettempdir())
    for d in root.glob(f"{DIR_PREFIX}*"):
        owner = d / "owner.pid"
        try:
            text = owner.read_text().strip()
        except OSError:
            continue
        if not text.isdigit() or pid_alive(int(text)):
            continue
        state_file = d / STATE_FILE
        if state_file.exists():
            with contextlib.suppress(ValueError, KeyError):
                stop_state(ControlPlaneState.from_json(state_file.read_text()))
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _first_service_ip(cidr: str) -> str:
    return str(next(ipaddress.ip_network(cidr).hosts()))
