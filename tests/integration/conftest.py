"""Integration tier: a real agent process with real namespaces, cgroups and mounts (root)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agent import Agent
from tests.support.netclean import remove_agent_networks

pytestmark = pytest.mark.root


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.root)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="needs root: namespaces, cgroups, mounts"))


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """One agent per test module (stop grace 2 s, so stop tests stay short)."""
    state = tmp_path_factory.mktemp("agent") / "state"
    a = Agent(str(state), ("--stop-grace", "2")).start()
    yield a
    a.stop()
    remove_agent_networks(str(state))


@pytest.fixture
def fresh_state(tmp_path: Path) -> Iterator[str]:
    """A state directory for a test's own agent; its bridges and rules go afterwards."""
    state = str(tmp_path / "state")
    yield state
    remove_agent_networks(state)
