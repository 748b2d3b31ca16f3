"""Where each piece of a job lives under the state directory.

One place names every path, so the agent, the supervisor (which outlives the agent) and
the tests agree on the layout without sharing anything else:

    STATE/jobs/UUID/job.json        the record (no secret values)
    STATE/jobs/UUID/secrets.enc     secret env of a scheduled job, encrypted (deleted at launch)
    STATE/jobs/UUID/work/           the job's /work (uploads)
    STATE/jobs/UUID/logs/NNNNNN.log output segments, oldest first
    STATE/jobs/UUID/run/            supervisor.lock (held while it lives), supervisor.pid, exit.json
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class JobPaths:
    root: str

    @property
    def record(self) -> str:
        return os.path.join(self.root, "job.json")

    @property
    def secrets(self) -> str:
        return os.path.join(self.root, "secrets.enc")

    @property
    def work(self) -> str:
        return os.path.join(self.root, "work")

    @property
    def logs(self) -> str:
        return os.path.join(self.root, "logs")

    @property
    def run(self) -> str:
        return os.path.join(self.root, "run")

    @property
    def lock(self) -> str:
        return os.path.join(self.root, "run", "supervisor.lock")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.root, "run", "supervisor.pid")

    @property
    def exit(self) -> str:
        return os.path.join(self.root, "run", "exit.json")


@dataclass(frozen=True)
class StatePaths:
    root: str

    @property
    def jobs(self) -> str:
        return os.path.join(self.root, "jobs")

    @property
    def key(self) -> str:
        return os.path.join(self.root, "agent.key")

    @property
    def node_id(self) -> str:
        return os.path.join(self.root, "node_id")

    @property
    def rootfs_mountpoint(self) -> str:
        """An empty directory every job mounts its private root on, inside its own mount
        namespace; the host never sees those mounts."""
        return os.path.join(self.root, "rootfs")

    def job(self, uuid: str) -> JobPaths:
        return JobPaths(os.path.join(self.jobs, uuid))
