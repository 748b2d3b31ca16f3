"""What the agent writes to the cluster about itself (node_agent.registry.node): the JobletNode
body and labels, capacity minus reserves, when a patch is needed, the Ready condition the agent
writes on start, the heartbeat Lease, and the retry delays while the API server is away."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from node_agent.registry.node import (
    Backoff,
    NodeFacts,
    NodeInventory,
    Resources,
    advertise_address,
    allocatable_of,
    capacity_of,
    lease_body,
    lease_renewal,
    node_body,
    node_patch,
    parse_label,
    ready_status,
)

NOW = datetime(2026, 11, 27, 21, 0, 0, 123456, tzinfo=UTC)


def _facts(**kw: object) -> NodeFacts:
    base: dict[str, object] = dict(
        name="node-a",
        node_id="id-1",
        address="10.1.0.2:50051",
        hostname="host-a",
        capacity=Resources(4, 8000),
        allocatable=Resources(3, 7000),
        labels=(("zone", "z1"),),
        inventory=NodeInventory.of(networks=["web", "db"], runtimes=["python-3.11"]),
        agent_version="0.1.0",
    )
    base.update(kw)
    return NodeFacts(**base)  # type: ignore[arg-type]


def test_capacity_from_cpu_count_and_memory_bytes() -> None:
    assert capacity_of(8, 16 << 30) == Resources(8, 16384)
    assert capacity_of(None, 0) == Resources(1, 0)  # os.cpu_count() may be None


def test_allocatable_subtracts_reserve_and_never_goes_negative() -> None:
    cap = Resources(4, 8000)
    assert allocatable_of(cap, 0, 0) == cap
    assert allocatable_of(cap, 1, 1024) == Resources(3, 6976)
    assert allocatable_of(cap, 10, 10_000) == Resources(0, 0)
    with pytest.raises(ValueError):
        allocatable_of(cap, -1, 0)


def test_body_follows_the_contract() -> None:
    body = node_body(_facts())
    assert body["apiVersion"] == "joblet.io/v1alpha1"
    assert body["kind"] == "JobletNode"
    assert body["metadata"] == {
        "name": "node-a",
        "labels": {"zone": "z1", "joblet.io/hostname": "host-a"},
    }
    assert body["spec"] == {
        "address": "10.1.0.2:50051",
        "nodeID": "id-1",
        "capacity": {"cpu": 4, "memoryMB": 8000},
        "allocatable": {"cpu": 3, "memoryMB": 7000},
        "networks": ["db", "web"],
        "volumes": [],
        "runtimes": ["python-3.11"],
        "agentVersion": "0.1.0",
    }
    assert "status" not in body  # status goes through the subresource


def test_hostname_label_cannot_be_overridden_by_a_flag() -> None:
    body = node_body(_facts(labels=(("joblet.io/hostname", "liar"),)))
    assert body["metadata"]["labels"]["joblet.io/hostname"] == "host-a"


def test_no_patch_when_the_cluster_already_agrees() -> None:
    facts = _facts()
    existing = {**node_body(facts), "status": {"conditions": []}}
    existing["metadata"] = {**existing["metadata"], "generation": 3, "resourceVersion": "9"}
    assert node_patch(existing, facts) is None


def test_inventory_order_is_not_a_change() -> None:
    a = _facts(inventory=NodeInventory.of(networks=["web", "db", "web"]))
    b = _facts(inventory=NodeInventory.of(networks=["db", "web"]))
    assert node_patch(node_body(a), b) is None


def test_changed_inventory_patches_the_whole_spec_only() -> None:
    old = node_body(_facts())
    new = _facts(inventory=NodeInventory.of(networks=["web"], volumes=["ns-v1"]))
    patch = node_patch(old, new)
    assert patch == {"spec": node_body(new)["spec"]}


def test_label_patch_touches_only_our_labels() -> None:
    existing = node_body(_facts())
    existing["metadata"]["labels"]["admin/owned"] = "yes"
    assert node_patch(existing, _facts()) is None  # an admin's label is left alone
    patch = node_patch(existing, _facts(labels=(("zone", "z2"), ("gpu", "no"))))
    assert patch == {"metadata": {"labels": {"zone": "z2", "gpu": "no"}}}


def test_patch_recreates_a_spec_someone_emptied() -> None:
    existing = {"metadata": {"name": "node-a"}, "spec": {"address": "1.2.3.4:1"}}
    patch = node_patch(existing, _facts())
    assert patch is not None
    assert patch["spec"] == node_body(_facts())["spec"]
    assert patch["metadata"]["labels"]["joblet.io/hostname"] == "host-a"


def test_ready_status_on_a_fresh_node() -> None:
    status = ready_status({"metadata": {"generation": 2}}, NOW)
    assert status["lastHeartbeatTime"] == "2026-11-27T21:00:00Z"
    (cond,) = status["conditions"]
    assert cond == {
        "type": "Ready",
        "status": "True",
        "reason": "AgentReady",
        "message": cond["message"],
        "lastTransitionTime": "2026-11-27T21:00:00Z",
        "observedGeneration": 2,
    }


def test_ready_status_keeps_transition_time_while_ready_and_other_conditions() -> None:
    since = "2026-11-27T20:00:00Z"
    existing = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": since},
                {"type": "Other", "status": "False"},
            ]
        }
    }
    conds = {c["type"]: c for c in ready_status(existing, NOW)["conditions"]}
    assert conds["Ready"]["lastTransitionTime"] == since
    assert conds["Other"] == {"type": "Other", "status": "False"}


def test_ready_status_after_a_lapse_is_a_new_transition() -> None:
    existing = {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "HeartbeatLapsed",
                    "lastTransitionTime": "2026-11-27T20:00:00Z",
                }
            ]
        }
    }
    (cond,) = ready_status(existing, NOW)["conditions"]
    assert (cond["status"], cond["reason"]) == ("True", "AgentReady")
    assert cond["lastTransitionTime"] == "2026-11-27T21:00:00Z"


def test_lease_body_and_renewal() -> None:
    body = lease_body("node-a", NOW)
    assert body["metadata"] == {"name": "joblet-node-node-a", "namespace": "joblet-system"}
    assert body["spec"] == {
        "holderIdentity": "node-a",
        "leaseDurationSeconds": 40,
        "acquireTime": "2026-11-27T21:00:00.123456Z",
        "renewTime": "2026-11-27T21:00:00.123456Z",
    }
    later = lease_renewal("node-a", NOW + timedelta(seconds=10))
    assert later == {
        "spec": {
            "holderIdentity": "node-a",
            "leaseDurationSeconds": 40,
            "renewTime": "2026-11-27T21:00:10.123456Z",
        }
    }


@pytest.mark.parametrize(
    ("text", "want"),
    [("zone=z1", ("zone", "z1")), ("empty=", ("empty", "")), ("a=b=c", ("a", "b=c"))],
)
def test_parse_label(text: str, want: tuple[str, str]) -> None:
    assert parse_label(text) == want


@pytest.mark.parametrize("text", ["novalue", "=v", ""])
def test_parse_label_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_label(text)


def test_advertise_address_from_listen() -> None:
    assert advertise_address("127.0.0.1", 50051, "10.0.0.5") == "127.0.0.1:50051"
    assert advertise_address("0.0.0.0", 50051, "10.0.0.5") == "10.0.0.5:50051"
    assert advertise_address("[::]", 7, "10.0.0.5") == "10.0.0.5:7"
    assert advertise_address("[fd00::2]", 7, "x") == "[fd00::2]:7"
    assert advertise_address("", 7, "host-a") == "host-a:7"


def test_backoff_doubles_to_a_limit_and_restarts() -> None:
    b = Backoff(first=1.0, limit=30.0)
    assert [b.after(n) for n in range(0, 8)] == [1.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert b.after(10_000) == 30.0
