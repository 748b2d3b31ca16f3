"""Polls the daemons' health endpoints until they answer ``ok`` (or a daemon dies, or time runs
out), so a caller gets a control plane that is ready, or an error that shows the daemon's log."""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from joblet.devcluster.process import Daemon


class StartupFailed(RuntimeError):
    """A daemon died or did not become healthy in time."""


@dataclass(frozen=True)
class Probe:
    """One health URL, the daemon behind it, and the TLS material to reach it."""

    daemon: Daemon
    url: str
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    def check(self) -> bool:
        ctx: ssl.SSLContext | None = None
        if self.url.startswith("https:"):
            ctx = ssl.create_default_context(cafile=str(self.ca_cert) if self.ca_cert else None)
            if self.client_cert and self.client_key:
                ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        try:
            with urllib.request.urlopen(self.url, timeout=2, context=ctx) as resp:
                body = resp.read(200).decode(errors="replace")
                return resp.status == 200 and ("ok" in body or "true" in body)
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False


def wait_healthy(probes: Sequence[Probe], timeout: float) -> None:
    """Returns once every probe passes; raises StartupFailed with the log tail otherwise."""
    pending = list(probes)
    deadline = time.monotonic() + timeout
    while pending:
        for probe in list(pending):
            if probe.check():
                pending.remove(probe)
            elif not probe.daemon.alive():
                raise StartupFailed(
                    f"{probe.daemon.name} exited during startup; log {probe.daemon.log}:\n"
                    f"{probe.daemon.log_tail()}"
                )
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(p.daemon.name for p in pending)
            tails = "\n".join(f"--- {p.daemon.name}:\n{p.daemon.log_tail()}" for p in pending)
            raise StartupFailed(f"not healthy after {timeout:.0f} s: {names}\n{tails}")
        time.sleep(0.1)
