"""Certificates for agent mTLS tests, issued by the devcluster CA helper (one PKI code path
for tests, the demo and the e2e harness)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from joblet.devcluster.pki import create_ca


@dataclass(frozen=True)
class CertFiles:
    cert: str
    key: str
    ca: str

    def read(self) -> tuple[bytes, bytes, bytes]:
        return Path(self.cert).read_bytes(), Path(self.key).read_bytes(), Path(self.ca).read_bytes()


class TestPKI:
    __test__ = False  # a helper, not a test class

    def __init__(self, directory: str) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = create_ca(self.dir, "joblet-test-ca")
        self.ca_path = str(self.ca.cert)

    def issue(self, name: str, *, ou: str | None = None, server: bool = False) -> CertFiles:
        if server:
            pair = self.ca.issue_server(self.dir, name, ("localhost", "127.0.0.1"))
        else:
            pair = self.ca.issue_client(self.dir, name, units=(ou,) if ou else ())
        return CertFiles(str(pair.cert), str(pair.key), self.ca_path)
