"""Remove what an agent left on the host's network: its bridges and its nftables table.

Bridges and rules outlive the agent on purpose (running jobs keep their network across an
agent restart), so tests that are done with an agent's state directory remove them here.
"""

from __future__ import annotations

import json
import os
import subprocess

from node_agent.networks.plan import table_name


def remove_agent_networks(state_dir: str) -> None:
    try:
        with open(os.path.join(state_dir, "networks", "state.json")) as f:
            bridges = [n["bridge"] for n in json.load(f)["networks"].values()]
    except (OSError, ValueError, KeyError):
        bridges = []
    for bridge in bridges:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
    try:
        with open(os.path.join(state_dir, "node_id")) as f:
            node_id = f.read().strip()
    except OSError:
        return
    table = table_name(node_id)
    subprocess.run(
        ["nft", "-f", "-"],
        input=f"table inet {table}\ndelete table inet {table}\n".encode(),
        capture_output=True,
        check=False,
    )
