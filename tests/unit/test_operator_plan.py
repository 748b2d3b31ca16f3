"""The operator's pure planning: node choice, attempt outcomes, conditions, dispatch UUIDs."""

from __future__ import annotations

from joblet_operator.model import JobSpec, NodeView, agent_job_uuid
from joblet_operator.phases import attempt_outcome, set_condition
from joblet_operator.scheduling import Usage, choose_node


def node(
    name: str, *, ready: bool = True, cpu: int = 2, mem: int = 4096, **labels: str
) -> NodeView:
    return NodeView(
        name=name,
        address=f"{name}:50051",
        labels=tuple(sorted(labels.items())),
        ready=ready,
        cpu_cores=cpu,
        memory_mb=mem,
        networks=frozenset({"data"}) if name == "b" else frozenset(),
        volumes=frozenset({"team-cache"}) if name == "a" else frozenset(),
        runtimes=frozenset({"python-3.11-ml"}) if name == "b" else frozenset(),
    )


def job(**spec: object) -> JobSpec:
    return JobSpec.parse({"command": "true", **spec})


NODES = [node("a", zone="east"), node("b", zone="west"), node("c", ready=False, zone="east")]


def test_selector_and_name() -> None:
    assert choose_node(job(nodeSelector={"zone": "west"}), "ns", NODES, {}).node == NODES[1]
    assert choose_node(job(nodeName="a"), "ns", NODES, {}).node == NODES[0]
    d = choose_node(job(nodeName="c"), "ns", NODES, {})
    assert d.node is None and "'c' is not Ready" in d.reason
    d = choose_node(job(nodeSelector={"zone": "north"}), "ns", NODES, {})
    assert d.node is None and "nodeSelector zone=north" in d.reason


def test_resources_fit_and_least_loaded() -> None:
    big = job(resources={"maxMemory": 3000})
    usage = {"a": Usage(memory_mb=2000, jobs=1)}
    assert choose_node(big, "ns", NODES, usage).node == NODES[1]
    usage = {"a": Usage(memory_mb=2000), "b": Usage(memory_mb=2000)}
    d = choose_node(big, "ns", NODES, usage)
    assert d.node is None and "room" in d.reason
    # no limits: spread by job count
    assert choose_node(job(), "ns", NODES, {"a": Usage(jobs=3)}).node == NODES[1]
    assert choose_node(job(resources={"maxCPU": 300}), "ns", NODES, {}).node is None


def test_node_resources_required() -> None:
    assert choose_node(job(network="data"), "ns", NODES, {}).node == NODES[1]
    assert choose_node(job(volumes=["cache"]), "team", NODES, {}).node == NODES[0]
    assert choose_node(job(runtime="python-3.11-ml"), "ns", NODES, {}).node == NODES[1]
    d = choose_node(job(volumes=["cache"]), "other", NODES, {})
    assert d.node is None and "volume 'cache'" in d.reason


def test_avoid_previous_node_when_possible() -> None:
    assert choose_node(job(), "ns", NODES, {}, avoid=frozenset({"a"})).node == NODES[1]
    only_a = [NODES[0]]
    assert choose_node(job(), "ns", only_a, {}, avoid=frozenset({"a"})).node == NODES[0]


def test_no_ready_nodes() -> None:
    d = choose_node(job(), "ns", [NODES[2]], {})
    assert d.node is None and d.reason == "no Ready JobletNode"


def test_outcomes_and_retries() -> None:
    assert attempt_outcome("COMPLETED", 0, "", attempts=1, backoff_limit=0).phase == "Succeeded"
    o = attempt_outcome("FAILED", 3, "exited with code 3", attempts=1, backoff_limit=2)
    assert (o.phase, o.reason) == ("Pending", "Error") and "retrying" in o.message
    o = attempt_outcome("FAILED", 3, "exited with code 3", attempts=3, backoff_limit=2)
    assert (o.phase, o.reason) == ("Failed", "BackoffLimitExceeded")
    o = attempt_outcome("FAILED", -1, "", attempts=1, backoff_limit=1, node_lost=True)
    assert (o.phase, o.reason) == ("Pending", "NodeLost")
    o = attempt_outcome("FAILED", -1, "", attempts=1, backoff_limit=0, node_lost=True)
    assert (o.phase, o.reason) == ("Failed", "NodeLost")
    o = attempt_outcome("STOPPED", 137, "", attempts=1, backoff_limit=5, deadline_exceeded=True)
    assert (o.phase, o.reason) == ("Failed", "DeadlineExceeded")
    assert (
        attempt_outcome("STOPPED", 143, "stopped", attempts=1, backoff_limit=0).phase == "Stopped"
    )


def test_conditions_keep_transition_time() -> None:
    c1 = set_condition([], "Ready", True, "A", "m", "t1")
    c2 = set_condition(c1, "Ready", True, "A", "m2", "t2")
    assert c2[0]["lastTransitionTime"] == "t1" and c2[0]["message"] == "m2"
    c3 = set_condition(c2, "Ready", False, "B", "m3", "t3")
    assert c3[0]["lastTransitionTime"] == "t3" and c3[0]["status"] == "False"


def test_dispatch_uuid_is_stable_per_attempt() -> None:
    a1 = agent_job_uuid("uid-1", 1)
    assert a1 == agent_job_uuid("uid-1", 1)
    assert a1 != agent_job_uuid("uid-1", 2) != agent_job_uuid("uid-2", 1)


def test_parse_full_spec() -> None:
    s = JobSpec.parse(
        {
            "command": "python3",
            "args": ["-c", "print(1)"],
            "env": [{"name": "A", "value": "1"}],
            "secretEnv": [{"name": "T", "secretKeyRef": {"name": "s", "key": "k"}}],
            "uploads": [{"configMap": "cm", "key": "run.sh"}],
            "resources": {"maxCPU": 50, "maxMemory": 128, "cpuCores": "0", "maxIOBPS": 1000},
            "backoffLimit": 2,
            "ttlSecondsAfterFinished": 0,
        }
    )
    assert s.secret_env[0].secret == "s" and s.uploads[0].key == "run.sh"
    assert (s.max_cpu, s.max_memory, s.backoff_limit, s.ttl_seconds_after_finished) == (
        50,
        128,
        2,
        0,
    )
