"""Shared by every tier: whatever agents the tests started leave nothing on the host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.agent import STARTED
from tests.support.netclean import remove_agent_networks


@pytest.fixture(scope="session", autouse=True)
def _no_networks_left() -> Iterator[None]:
    """Bridges and rules outlive agents on purpose; at the end nothing of ours may be left."""
    yield
    for state in sorted(STARTED):
        remove_agent_networks(state)
