"""What every verb handler receives: the parsed arguments, the configuration, and a client
connected on first use (so ``joblet nodes`` and usage errors never open a connection)."""

from __future__ import annotations

import argparse

from joblet.client import JobletClient
from joblet.config import ClientConfig, NodeConfig, load_config


class Session:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = bool(args.json)
        self._config: ClientConfig | None = None
        self._client: JobletClient | None = None

    @property
    def config(self) -> ClientConfig:
        if self._config is None:
            self._config = load_config(self.args.config)
        return self._config

    @property
    def node(self) -> NodeConfig:
        return self.config.node(self.args.node)

    @property
    def client(self) -> JobletClient:
        if self._client is None:
            self._client = JobletClient.connect(self.node)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
