"""Durable job records under the state directory.

Records are small JSON files replaced atomically on every transition, so a `kill -9` of
the agent at any moment leaves either the old or the new record, never a torn one. A
record that cannot be read (hand-edited, disk trouble) is set aside, reported and skipped
rather than taking the agent down. Secret values are never written in clear: only a
scheduled job keeps them, encrypted with the agent's key, until it launches.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil

from cryptography.fernet import Fernet, InvalidToken

from node_agent.jobs.model import JobRecord
from node_agent.state.paths import JobPaths, StatePaths
from node_agent.sys.files import read_json, write_atomic, write_json

log = logging.getLogger(__name__)


class JobStore:
    def __init__(self, state: StatePaths) -> None:
        self.state = state
        os.makedirs(state.jobs, mode=0o700, exist_ok=True)
        os.makedirs(state.rootfs_mountpoint, mode=0o755, exist_ok=True)
        self._fernet = Fernet(self._load_key())

    def _load_key(self) -> bytes:
        try:
            with open(self.state.key, "rb") as f:
                return f.read().strip()
        except FileNotFoundError:
            key = Fernet.generate_key()
            write_atomic(self.state.key, key, 0o600)
            return key

    def paths(self, uuid: str) -> JobPaths:
        return self.state.job(uuid)

    def create_dirs(self, uuid: str) -> JobPaths:
        p = self.paths(uuid)
        os.makedirs(p.root, mode=0o711, exist_ok=True)
        for d in (p.logs, p.run):
            os.makedirs(d, mode=0o700, exist_ok=True)
        return p

    def save(self, record: JobRecord) -> None:
        write_json(self.paths(record.uuid).record, record.to_disk())

    def load_all(self) -> list[JobRecord]:
        out = []
        try:
            names = os.listdir(self.state.jobs)
        except FileNotFoundError:
            return []
        for name in names:
            path = self.paths(name).record
            try:
                out.append(JobRecord.from_disk(read_json(path)))
            except FileNotFoundError:
                # a job directory whose record was never written: a launch interrupted
                # before its first save; nothing to recover
                shutil.rmtree(self.paths(name).root, ignore_errors=True)
            except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
                log.error("job record %s is unreadable (%s); moved aside", path, e)
                os.replace(path, path + ".corrupt")
        return out

    def delete(self, uuid: str) -> None:
        shutil.rmtree(self.paths(uuid).root, ignore_errors=True)

    # -- secrets of scheduled jobs ---------------------------------------------------------

    def save_secrets(self, uuid: str, secrets: tuple[tuple[str, str], ...]) -> None:
        token = self._fernet.encrypt(json.dumps(list(secrets)).encode())
        write_atomic(self.paths(uuid).secrets, token, 0o600)

    def load_secrets(self, uuid: str) -> tuple[tuple[str, str], ...] | None:
        try:
            with open(self.paths(uuid).secrets, "rb") as f:
                data = json.loads(self._fernet.decrypt(f.read()))
        except FileNotFoundError:
            return None
        except InvalidToken:
            log.error("secrets of job %s cannot be decrypted with this agent's key", uuid)
            return None
        return tuple((str(k), str(v)) for k, v in data)

    def drop_secrets(self, uuid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths(uuid).secrets)
