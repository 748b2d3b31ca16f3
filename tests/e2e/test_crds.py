"""The joblet.io CRDs and RBAC in ``crds/`` on a real API server, used the way users and our own
components use them: they install and become Established; every example applies; bad input is
refused at ``kubectl apply`` time with a message a person can act on; the status subresource,
printer columns, short names and the ``joblet`` category work; and the operator and agent
identities can do what they need and nothing they must not."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from joblet.devcluster import ControlPlane

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
EXAMPLES = ROOT / "examples"
API = "joblet.io/v1alpha1"

# kind -> (plural, short names, namespaced, printer columns by name)
KINDS: dict[str, tuple[str, list[str], bool, list[str]]] = {
    "Job": ("jobs", ["jj", "jjob"], True, ["Phase", "Node", "Exit", "Attempts", "Age"]),
    "Workflow": ("workflows", ["jwf"], True, ["Phase", "Succeeded", "Failed", "Total", "Age"]),
    "Network": ("networks", ["jnet"], False, ["CIDR", "Ready", "Age"]),
    "Volume": ("volumes", ["jvol"], True, ["Size", "Type", "Ready", "Age"]),
    "Runtime": ("runtimes", ["jrt"], False, ["Ready", "Age"]),
    "JobletNode": ("jobletnodes", ["jn"], False, ["Address", "Ready", "CPU", "Memory", "Age"]),
}
EXAMPLE_FILES = (
    "job-hello.yaml",
    "job-limits.yaml",
    "job-secret.yaml",
    "job-uploads.yaml",
    "job-scheduled.yaml",
    "job-retry.yaml",
    "job-deadline.yaml",
    "network.yaml",
    "volume.yaml",
    "runtime-configmap.yaml",
    "workflow.yaml",
)
NOW = "2026-01-02T03:04:05Z"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _manifest(kind: str, name: str, spec: dict[str, Any], status: Any = None) -> str:
    doc: dict[str, Any] = {"apiVersion": API, "kind": kind, "metadata": {"name": name}}
    doc["spec"] = spec
    if status is not None:
        doc["status"] = status
    return json.dumps(doc)


def _get(cp: ControlPlane, *args: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cp.kubectl("get", *args, "-o", "json").stdout)
    return doc


def _table(cp: ControlPlane, *args: str) -> list[dict[str, str]]:
    """``kubectl get`` output as rows keyed by column header (values have no spaces here)."""
    lines = cp.kubectl("get", *args).stdout.splitlines()
    header = lines[0].split()
    return [dict(zip(header, line.split(), strict=True)) for line in lines[1:]]


def _can_i(cp: ControlPlane, kubeconfig: Path, *args: str, ns: str | None = None) -> bool:
    """``kubectl auth can-i`` as ``kubeconfig``; ``ns`` unless ``args`` name their own scope."""
    if ns is not None and "-n" not in args and "--all-namespaces" not in args:
        args = (*args, "-n", ns)
    out = cp.kubectl("auth", "can-i", *args, kubeconfig=kubeconfig, check=False)
    answer = out.stdout.strip()
    assert answer in ("yes", "no"), out.stderr
    return answer == "yes"


@pytest.fixture(scope="module")
def cp(control_plane: ControlPlane) -> ControlPlane:
    """The control plane with every joblet.io CRD Established and the RBAC applied."""
    out = control_plane.kubectl("apply", "-f", str(CRDS))
    for kind, (plural, *_rest) in KINDS.items():
        assert f"customresourcedefinition.apiextensions.k8s.io/{plural}.joblet.io" in out.stdout, (
            kind
        )
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        *(f"crd/{plural}.joblet.io" for plural, *_rest in KINDS.values()),
        "--timeout=60s",
    )
    control_plane.kubectl("apply", "-f", str(CRDS / "rbac.yaml"))
    return control_plane


@pytest.fixture(scope="module")
def ns(cp: ControlPlane) -> Iterator[str]:
    name = _unique("crds")
    cp.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cp.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def cluster_objects(cp: ControlPlane) -> Iterator[list[str]]:
    """Names like ``network/x`` of cluster-scoped objects a test made; deleted afterwards."""
    made: list[str] = []
    try:
        yield made
    finally:
        for obj in made:
            cp.kubectl("delete", f"{obj}", "--ignore-not-found", "--wait=false", check=False)


# --- installation --------------------------------------------------------------------------------


def test_every_crd_carries_the_agreed_names(cp: ControlPlane) -> None:
    for kind, (plural, short, namespaced, columns) in KINDS.items():
        crd = _get(cp, "crd", f"{plural}.joblet.io")
        spec = crd["spec"]
        assert spec["names"]["kind"] == kind
        assert spec["names"]["shortNames"] == short
        assert spec["names"]["categories"] == ["joblet"]
        assert spec["scope"] == ("Namespaced" if namespaced else "Cluster")
        (version,) = spec["versions"]
        assert version["name"] == "v1alpha1"
        assert version["subresources"] == {"status": {}}
        assert [c["name"] for c in version["additionalPrinterColumns"]] == columns
        conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conds["Established"] == "True"
        assert conds["NamesAccepted"] == "True"


def test_every_example_is_listed_and_applies(cp: ControlPlane, ns: str) -> None:
    on_disk = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert on_disk == sorted(EXAMPLE_FILES), "examples/ and this test disagree"
    readme = (EXAMPLES / "README.md").read_text()
    for name in EXAMPLE_FILES:
        assert f"`{name}`" in readme, f"{name} missing from examples/README.md"
        path = str(EXAMPLES / name)
        # The Runtime example names its namespaces itself (a cluster-wide object and the
        # ConfigMap it reads); every other example goes into the test namespace.
        where = () if name == "runtime-configmap.yaml" else ("-n", ns)
        out = cp.kubectl("apply", *where, "-f", path, check=False)
        assert out.returncode == 0, f"{name}: {out.stderr}"
        assert "created" in out.stdout or "configured" in out.stdout, out.stdout
        cp.kubectl("delete", *where, "-f", path, "--wait=false")


def test_defaults_are_filled_in(cp: ControlPlane, ns: str) -> None:
    cp.kubectl("apply", "-n", ns, "-f", "-", input=_manifest("Job", "defaults", {"command": "x"}))
    assert _get(cp, "jj", "defaults", "-n", ns)["spec"]["backoffLimit"] == 0
    cp.kubectl("apply", "-n", ns, "-f", "-", input=_manifest("Volume", "defaults", {"size": "1M"}))
    assert _get(cp, "jvol", "defaults", "-n", ns)["spec"]["type"] == "filesystem"


# --- bad input -----------------------------------------------------------------------------------

_SECRET_REF = {"name": "creds", "key": "token"}
_BAD: list[tuple[str, str, dict[str, Any], str]] = [
    # (id, kind, spec, text the server's answer must contain)
    ("job-node-pinning", "Job", {"command": "x", "nodeName": "a", "nodeSelector": {"k": "v"}},
     "spec.nodeName: Invalid value: nodeName and nodeSelector are mutually exclusive: pin the "
     "job to one node with nodeName, or let the operator choose among matching nodes with "
     "nodeSelector"),
    ("job-no-command", "Job", {"args": ["x"]}, "spec.command: Required value"),
    ("job-empty-command", "Job", {"command": ""},
     "spec.command in body should be at least 1 chars long"),
    ("job-negative-memory", "Job", {"command": "x", "resources": {"maxMemory": -1}},
     "spec.resources.maxMemory: Invalid value: -1: spec.resources.maxMemory in body should be "
     "greater than or equal to 0"),
    ("job-bad-cpu-cores", "Job", {"command": "x", "resources": {"cpuCores": "all"}},
     "cpuCores must list cores and ranges, e.g. '0-3' or '0,2,4-5'"),
    ("job-backwards-cpu-range", "Job", {"command": "x", "resources": {"cpuCores": "0,5-2"}},
     "cpuCores ranges must run from low to high, e.g. '2-5' not '5-2'"),
    ("job-backoff-too-high", "Job", {"command": "x", "backoffLimit": 101},
     "backoffLimit must be between 0 and 100 retries"),
    ("job-backoff-negative", "Job", {"command": "x", "backoffLimit": -1},
     "spec.backoffLimit in body should be greater than or equal to 0"),
    ("job-ttl-too-long", "Job", {"command": "x", "ttlSecondsAfterFinished": 40_000_000},
     "ttlSecondsAfterFinished must be between 0 and 31536000 seconds (one year)"),
    ("job-zero-deadline", "Job", {"command": "x", "activeDeadlineSeconds": 0},
     "spec.activeDeadlineSeconds in body should be greater than or equal to 1"),
    ("job-schedule-not-a-time", "Job", {"command": "x", "schedule": "tomorrow"},
     "spec.schedule in body must be of type date-time"),
    ("job-env-name", "Job", {"command": "x", "env": [{"name": "1ST", "value": "v"}]},
     "spec.env[0].name in body should match '^[A-Za-z_][A-Za-z0-9_]*$'"),
    ("job-env-duplicate", "Job",
     {"command": "x", "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]},
     'spec.env[1]: Duplicate value: {"name":"A"}'),
    ("job-env-and-secret-env", "Job",
     {"command": "x", "env": [{"name": "TOKEN", "value": "v"}],
      "secretEnv": [{"name": "TOKEN", "secretKeyRef": _SECRET_REF}]},
     "spec.secretEnv: Invalid value: a variable cannot be set in both env and secretEnv; keep it "
     "in one of them"),
    ("job-literal-secret", "Job",
     {"command": "x",
      "secretEnv": [{"name": "T", "value": "hunter2", "secretKeyRef": _SECRET_REF}]},
     'unknown field "spec.secretEnv[0].value"'),
    ("job-upload-escapes", "Job",
     {"command": "x", "uploads": [{"configMap": "c", "path": "a/../../etc/passwd"}]},
     "upload path must be relative (files land under /work) and must not contain '..'"),
    ("job-relative-workdir", "Job", {"command": "x", "workDir": "src"},
     "workDir must be an absolute path, such as /work/src"),
    ("network-host-address", "Network", {"cidr": "10.0.0.5/24"},
     "cidr must name the network address, e.g. 10.10.0.0/24 rather than 10.10.0.5/24"),
    ("network-not-ipv4", "Network", {"cidr": "300.0.0.0/24"},
     "cidr must be an IPv4 network such as 10.10.0.0/24"),
    ("network-ipv6", "Network", {"cidr": "fd00::/64"},
     "cidr must be an IPv4 network such as 10.10.0.0/24"),
    ("network-too-small", "Network", {"cidr": "10.0.0.0/31"},
     "cidr prefix must be between /8 and /29 so the network holds a few jobs"),
    ("network-no-cidr", "Network", {"nodeSelector": {"k": "v"}}, "spec.cidr: Required value"),
    ("volume-size-with-space", "Volume", {"size": "10 GB"},
     "size must be a number and a unit with no space, e.g. 512MB, 1GB or 2Gi"),
    ("volume-zero-size", "Volume", {"size": "0.0GB"}, "size must be greater than zero"),
    ("volume-bad-type", "Volume", {"size": "1GB", "type": "ssd"},
     'spec.type: Unsupported value: "ssd": supported values: "filesystem", "memory"'),
    ("volume-no-size", "Volume", {"type": "memory"}, "spec.size: Required value"),
    ("runtime-two-sources", "Runtime",
     {"source": {"github": {"repository": "acme/runtimes"},
                 "configMap": {"name": "rt", "namespace": "default"}}},
     "spec.source: Invalid value: source needs exactly one of github or configMap"),
    ("runtime-no-source", "Runtime", {"source": {}},
     "source needs exactly one of github or configMap"),
    ("runtime-bad-repository", "Runtime", {"source": {"github": {"repository": "runtimes"}}},
     "repository must be written owner/repo, e.g. acme/runtimes"),
    ("runtime-configmap-namespace", "Runtime", {"source": {"configMap": {"name": "rt"}}},
     "spec.source.configMap.namespace: Required value"),
    ("node-no-port", "JobletNode", {"address": "10.0.0.7"},
     "address must be host:port, e.g. 10.0.0.7:50051 or [fd00::7]:50051"),
    ("node-port-range", "JobletNode", {"address": "10.0.0.7:70000"},
     "address port must be between 1 and 65535"),
    ("node-overcommitted", "JobletNode",
     {"address": "10.0.0.7:50051", "capacity": {"cpu": 2, "memoryMB": 1024},
      "allocatable": {"cpu": 4, "memoryMB": 1024}},
     "spec.allocatable: Invalid value: allocatable cannot exceed capacity (cpu and memoryMB)"),
    ("workflow-unknown-dependency", "Workflow",
     {"jobs": {"test": {"template": {"command": "x"}, "dependsOn": [{"job": "build"}]}}},
     "every dependsOn entry must name another job of this Workflow"),
    ("workflow-self-dependency", "Workflow",
     {"jobs": {"a": {"template": {"command": "x"}, "dependsOn": [{"job": "a"}]}}},
     "a job cannot depend on itself"),
    ("workflow-bad-condition", "Workflow",
     {"jobs": {"a": {"template": {"command": "x"}},
               "b": {"template": {"command": "x"},
                     "dependsOn": [{"job": "a", "condition": "DONE"}]}}},
     'Unsupported value: "DONE": supported values: "COMPLETED", "FAILED", "FINISHED"'),
    ("workflow-job-name", "Workflow", {"jobs": {"Build_1": {"template": {"command": "x"}}}},
     "job names in a Workflow must be lowercase DNS labels such as 'build' or 'test-1'"),
    ("workflow-no-jobs", "Workflow", {"jobs": {}},
     "spec.jobs in body should have at least 1 properties"),
    ("workflow-template-pinning", "Workflow",
     {"jobs": {"a": {"template": {"command": "x", "nodeName": "n", "nodeSelector": {"k": "v"}}}}},
     "nodeName and nodeSelector are mutually exclusive"),
]  # fmt: skip


def test_every_kind_has_at_least_two_bad_cases() -> None:
    for kind in KINDS:
        assert sum(1 for _, k, _, _ in _BAD if k == kind) >= 2, kind


@pytest.mark.parametrize(
    ("kind", "spec", "message"), [c[1:] for c in _BAD], ids=[c[0] for c in _BAD]
)
def test_bad_input_is_refused_with_a_readable_message(
    cp: ControlPlane, ns: str, kind: str, spec: dict[str, Any], message: str
) -> None:
    name = _unique("bad")
    out = cp.kubectl("apply", "-n", ns, "-f", "-", input=_manifest(kind, name, spec), check=False)
    assert out.returncode != 0, f"accepted: {out.stdout}"
    assert message in out.stderr
    plural = KINDS[kind][0]
    exists = cp.kubectl("get", f"{plural}.joblet.io", name, "-n", ns, check=False)
    assert exists.returncode != 0, "a refused object must not be stored"


@pytest.mark.parametrize(
    ("kind", "spec", "change", "message"),
    [
        ("Job", {"command": "echo", "args": ["a"]}, {"args": ["b"]},
         "spec: Invalid value: Job spec is immutable; delete and re-create the Job"),
        ("Workflow", {"jobs": {"a": {"template": {"command": "x"}}}},
         {"jobs": {"a": {"template": {"command": "y"}}}},
         "Workflow spec is immutable; delete and re-create the Workflow"),
        ("Volume", {"size": "1GB"}, {"size": "2GB"},
         "Volume spec is immutable; delete and re-create the Volume to resize or move it"),
        ("Network", {"cidr": "10.91.0.0/24"}, {"cidr": "10.92.0.0/24"},
         'spec.cidr: Invalid value: "10.92.0.0/24": cidr cannot be changed; create a new '
         "Network instead"),
    ],
    ids=["job", "workflow", "volume", "network"],
)  # fmt: skip
def test_spec_changes_after_creation_are_refused(
    cp: ControlPlane,
    ns: str,
    cluster_objects: list[str],
    kind: str,
    spec: dict[str, Any],
    change: dict[str, Any],
    message: str,
) -> None:
    plural, _, namespaced, _ = KINDS[kind]
    name = _unique("fixed")
    cp.kubectl("apply", "-n", ns, "-f", "-", input=_manifest(kind, name, spec))
    if not namespaced:
        cluster_objects.append(f"{plural}.joblet.io/{name}")
    stored = _get(cp, f"{plural}.joblet.io", name, "-n", ns)["spec"]
    edited = cp.kubectl(
        "apply", "-n", ns, "-f", "-", input=_manifest(kind, name, {**spec, **change}), check=False
    )
    assert edited.returncode != 0, edited.stdout
    assert message in edited.stderr
    patched = cp.kubectl(
        "patch", f"{plural}.joblet.io", name, "-n", ns, "--type=merge",
        "-p", json.dumps({"spec": change}), check=False,
    )  # fmt: skip
    assert patched.returncode != 0
    assert message in patched.stderr
    # Metadata stays writable: the operator adds finalizers and annotations to these objects.
    cp.kubectl(
        "patch", f"{plural}.joblet.io", name, "-n", ns, "--type=merge",
        "-p", '{"metadata": {"labels": {"team": "a"}, "finalizers": ["joblet.io/test"]}}',
    )  # fmt: skip
    obj = _get(cp, f"{plural}.joblet.io", name, "-n", ns)
    assert obj["metadata"]["labels"] == {"team": "a"}
    assert obj["spec"] == stored
    cp.kubectl(
        "patch", f"{plural}.joblet.io", name, "-n", ns, "--type=json",
        "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]',
    )  # fmt: skip


# --- status, columns, category -------------------------------------------------------------------


def test_status_subresource_is_separate_from_spec(cp: ControlPlane, ns: str) -> None:
    operator = cp.user_kubeconfig("joblet-operator", [])
    cp.kubectl("apply", "-n", ns, "-f", "-", input=_manifest("Job", "st", {"command": "true"}))
    status = {
        "phase": "Running",
        "node": "node-a",
        "jobUUID": str(uuid.uuid4()),
        "attempts": 1,
        "startTime": NOW,
        "conditions": [
            {"type": "Scheduled", "status": "True", "reason": "NodeChosen",
             "message": "scheduled to node-a", "lastTransitionTime": NOW, "observedGeneration": 1},
            {"type": "Running", "status": "True", "reason": "Started", "lastTransitionTime": NOW},
        ],
    }  # fmt: skip
    # As the operator, through /status, with a spec change that must be ignored.
    cp.kubectl(
        "patch", "jj", "st", "-n", ns, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status, "spec": {"command": "false"}}), kubeconfig=operator,
    )  # fmt: skip
    obj = _get(cp, "jj", "st", "-n", ns)
    assert obj["status"] == status
    assert obj["spec"]["command"] == "true", "a status write must not change spec"
    # A write to the main resource cannot change status.
    cp.kubectl(
        "patch", "jj", "st", "-n", ns, "--type=merge", "-p", '{"status": {"phase": "Failed"}}'
    )
    assert _get(cp, "jj", "st", "-n", ns)["status"]["phase"] == "Running"
    # Status is validated too.
    bad = cp.kubectl(
        "patch", "jj", "st", "-n", ns, "--subresource=status", "--type=merge",
        "-p", '{"status": {"phase": "Done"}}', kubeconfig=operator, check=False,
    )  # fmt: skip
    assert bad.returncode != 0
    assert 'status.phase: Unsupported value: "Done"' in bad.stderr
    bad_condition = cp.kubectl(
        "patch", "jj", "st", "-n", ns, "--subresource=status", "--type=merge",
        "-p", '{"status": {"conditions": [{"type": "Running", "status": "Yes"}]}}',
        kubeconfig=operator, check=False,
    )  # fmt: skip
    assert bad_condition.returncode != 0
    assert 'supported values: "True", "False", "Unknown"' in bad_condition.stderr


def _set_status(cp: ControlPlane, resource: str, name: str, ns: str, status: Any) -> None:
    cp.kubectl(
        "patch", resource, name, "-n", ns, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def _ready(status: str) -> dict[str, Any]:
    return {"conditions": [{"type": "Ready", "status": status, "lastTransitionTime": NOW}]}


def test_printer_columns_and_category(
    cp: ControlPlane, ns: str, cluster_objects: list[str]
) -> None:
    job, wf, vol, net, rt, node = (_unique(k) for k in ("job", "wf", "vol", "net", "rt", "node"))
    objects: list[tuple[str, str, dict[str, Any]]] = [
        ("Job", job, {"command": "true"}),
        ("Workflow", wf, {"jobs": {"a": {"template": {"command": "x"}}}}),
        ("Volume", vol, {"size": "2Gi", "type": "memory"}),
        ("Network", net, {"cidr": "10.93.0.0/24"}),
        ("Runtime", rt, {"source": {"github": {"repository": "acme/rt", "branch": "main"}}}),
        ("JobletNode", node, {"address": "10.0.0.9:50051", "capacity": {"cpu": 8, "memoryMB": 4096},
                              "allocatable": {"cpu": 7, "memoryMB": 3584}}),
    ]  # fmt: skip
    for kind, name, spec in objects:
        cp.kubectl("apply", "-n", ns, "-f", "-", input=_manifest(kind, name, spec))
        if not KINDS[kind][2]:
            cluster_objects.append(f"{KINDS[kind][0]}.joblet.io/{name}")
    _set_status(cp, "jj", job, ns, {"phase": "Failed", "node": "node-b", "exitCode": 3,
                                    "attempts": 3})  # fmt: skip
    counts = {"total": 1, "succeeded": 0, "failed": 0}
    _set_status(cp, "jwf", wf, ns, {"phase": "Running", "counts": counts})
    for resource, name in (("jvol", vol), ("jnet", net), ("jrt", rt), ("jn", node)):
        _set_status(cp, resource, name, ns, _ready("True"))

    (row,) = _table(cp, "jj", job, "-n", ns)
    assert list(row) == ["NAME", "PHASE", "NODE", "EXIT", "AGE"]
    assert (row["PHASE"], row["NODE"], row["EXIT"]) == ("Failed", "node-b", "3")
    (wide,) = _table(cp, "jjob", job, "-n", ns, "-o", "wide")
    assert wide["ATTEMPTS"] == "3"
    (row,) = _table(cp, "jwf", wf, "-n", ns)
    assert (row["PHASE"], row["SUCCEEDED"], row["FAILED"], row["TOTAL"]) == (
        "Running",
        "0",
        "0",
        "1",
    )
    (row,) = _table(cp, "jvol", vol, "-n", ns)
    assert (row["SIZE"], row["TYPE"], row["READY"]) == ("2Gi", "memory", "True")
    (row,) = _table(cp, "jnet", net)
    assert (row["CIDR"], row["READY"]) == ("10.93.0.0/24", "True")
    (row,) = _table(cp, "jrt", rt)
    assert row["READY"] == "True"
    (row,) = _table(cp, "jn", node)
    assert (row["ADDRESS"], row["READY"], row["CPU"], row["MEMORY"]) == (
        "10.0.0.9:50051", "True", "8", "4096",
    )  # fmt: skip

    listed = cp.kubectl("get", "joblet", "-A", "-o", "name").stdout.split()
    for kind, name, _ in objects:
        assert f"{KINDS[kind][0][:-1]}.joblet.io/{name}" in listed, kind
    plain = cp.kubectl("get", "joblet", "-A").stdout
    for _, name, _ in objects:
        assert name in plain


# --- RBAC ----------------------------------------------------------------------------------------

OPERATOR_MAY = [
    ("get", "jobs.joblet.io"), ("list", "jobs.joblet.io"), ("watch", "jobs.joblet.io"),
    ("patch", "jobs.joblet.io"), ("delete", "jobs.joblet.io"),
    ("patch", "jobs.joblet.io", "--subresource=status"),
    ("update", "jobs.joblet.io", "--subresource=finalizers"),
    ("watch", "networks.joblet.io"), ("patch", "networks.joblet.io", "--subresource=status"),
    ("watch", "volumes.joblet.io"), ("patch", "volumes.joblet.io", "--subresource=status"),
    ("watch", "runtimes.joblet.io"), ("patch", "runtimes.joblet.io", "--subresource=status"),
    ("watch", "jobletnodes.joblet.io"),
    ("patch", "jobletnodes.joblet.io", "--subresource=status"),
    ("get", "secrets"), ("get", "configmaps"),
    ("create", "events"), ("patch", "events"), ("create", "events.events.k8s.io"),
    ("watch", "leases.coordination.k8s.io", "-n", "joblet-system"),
    ("list", "leases.coordination.k8s.io", "--all-namespaces"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("list", "namespaces"), ("watch", "namespaces"),
]  # fmt: skip
OPERATOR_MAY_NOT = [
    ("list", "secrets"), ("watch", "secrets"), ("list", "secrets", "--all-namespaces"),
    ("create", "secrets"), ("update", "configmaps"), ("list", "configmaps"),
    ("delete", "namespaces"), ("create", "namespaces"),
    ("create", "pods"), ("get", "pods"), ("create", "deployments.apps"),
    ("create", "jobs.joblet.io"), ("delete", "networks.joblet.io"),
    ("delete", "jobletnodes.joblet.io"), ("create", "jobletnodes.joblet.io"),
    ("create", "leases.coordination.k8s.io", "-n", "joblet-system"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "events"), ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("create", "kopfpeerings.kopf.dev"),
]  # fmt: skip


def test_operator_identity_has_exactly_what_it_needs(cp: ControlPlane, ns: str) -> None:
    kubeconfig = cp.user_kubeconfig("joblet-operator", [])
    for args in OPERATOR_MAY:
        assert _can_i(cp, kubeconfig, *args, ns=ns), f"operator should be able to {args}"
    for args in OPERATOR_MAY_NOT:
        assert not _can_i(cp, kubeconfig, *args, ns=ns), f"operator must not {args}"
    # The in-cluster ServiceAccount gets the same rules.
    admin = cp.kubeconfig
    sa = "--as=system:serviceaccount:joblet-system:joblet-operator"
    assert _can_i(cp, admin, sa, "patch", "jobs.joblet.io", "--subresource=status", "-n", ns)
    assert not _can_i(cp, admin, sa, "list", "secrets", "-n", ns)
    # Real requests, not only the authorizer's answers: read one Secret by name, fail to list.
    cp.kubectl("create", "secret", "generic", "creds", "-n", ns, "--from-literal=token=fake")
    got = cp.kubectl("get", "secret", "creds", "-n", ns, "-o", "name", kubeconfig=kubeconfig)
    assert got.stdout.strip() == "secret/creds"
    listed = cp.kubectl("get", "secrets", "-n", ns, kubeconfig=kubeconfig, check=False)
    assert listed.returncode != 0
    assert 'User "joblet-operator" cannot list resource "secrets"' in listed.stderr
    cp.kubectl("get", "jj,jvol", "-n", ns, kubeconfig=kubeconfig)
    cp.kubectl("get", "jn,jnet,jrt", kubeconfig=kubeconfig)
    cp.kubectl("get", "leases", "-n", "joblet-system", kubeconfig=kubeconfig)


def test_agent_identity_registers_its_node_and_nothing_more(
    cp: ControlPlane, ns: str, cluster_objects: list[str]
) -> None:
    agent = cp.user_kubeconfig("node-a", ["joblet:agents"])
    node = _unique("node-a")
    cluster_objects.append(f"jobletnodes.joblet.io/{node}")
    spec = {
        "address": "10.0.0.10:50051",
        "nodeID": "abc",
        "capacity": {"cpu": 2, "memoryMB": 2048},
        "allocatable": {"cpu": 2, "memoryMB": 1800},
        "agentVersion": "0.1.0",
    }
    cp.kubectl("create", "-f", "-", input=_manifest("JobletNode", node, spec), kubeconfig=agent)
    cp.kubectl(
        "patch", "jobletnode", node, "--type=merge",
        "-p", '{"spec": {"runtimes": ["python-3.11"]}}', kubeconfig=agent,
    )  # fmt: skip
    cp.kubectl(
        "patch", "jobletnode", node, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {**_ready("True"), "lastHeartbeatTime": NOW}}),
        kubeconfig=agent,
    )  # fmt: skip
    assert _get(cp, "jn", node)["spec"]["runtimes"] == ["python-3.11"]
    lease: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": f"joblet-node-{node}", "namespace": "joblet-system"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40,
                 "renewTime": "2026-01-02T03:04:05.000000Z"},
    }  # fmt: skip
    try:
        cp.kubectl("create", "-f", "-", input=json.dumps(lease), kubeconfig=agent)
        cp.kubectl(
            "patch", "lease", f"joblet-node-{node}", "-n", "joblet-system", "--type=merge",
            "-p", '{"spec": {"renewTime": "2026-01-02T03:04:15.000000Z"}}', kubeconfig=agent,
        )  # fmt: skip
        lease["metadata"]["namespace"] = ns
        elsewhere = cp.kubectl(
            "create", "-f", "-", input=json.dumps(lease), kubeconfig=agent, check=False
        )
        assert elsewhere.returncode != 0
        assert "forbidden" in elsewhere.stderr
    finally:
        cp.kubectl(
            "delete", "lease", f"joblet-node-{node}", "-n", "joblet-system", "--ignore-not-found"
        )
    secret = cp.kubectl("get", "secret", "anything", "-n", ns, kubeconfig=agent, check=False)
    assert 'User "node-a" cannot get resource "secrets"' in secret.stderr
    for args in [
        ("delete", "jobs.joblet.io"), ("get", "jobs.joblet.io"), ("list", "jobs.joblet.io"),
        ("get", "secrets"), ("list", "secrets"), ("get", "configmaps"),
        ("delete", "jobletnodes.joblet.io"), ("list", "jobletnodes.joblet.io"),
        ("patch", "networks.joblet.io", "--subresource=status"),
        ("create", "leases.coordination.k8s.io"), ("create", "pods"),
    ]:  # fmt: skip
        assert not _can_i(cp, agent, *args, ns=ns), f"agent must not {args}"
    for args in [
        ("create", "jobletnodes.joblet.io"), ("get", "jobletnodes.joblet.io"),
        ("update", "jobletnodes.joblet.io"),
        ("patch", "jobletnodes.joblet.io", "--subresource=status"),
        ("create", "leases.coordination.k8s.io", "-n", "joblet-system"),
        ("update", "leases.coordination.k8s.io", "-n", "joblet-system"),
    ]:  # fmt: skip
        assert _can_i(cp, agent, *args), f"agent should be able to {args}"
    admin = cp.kubeconfig
    sa = "--as=system:serviceaccount:joblet-system:joblet-agent"
    assert _can_i(cp, admin, sa, "create", "jobletnodes.joblet.io")
    assert _can_i(cp, admin, sa, "patch", "leases.coordination.k8s.io", "-n", "joblet-system")
    assert not _can_i(cp, admin, sa, "get", "secrets", "-n", ns)


def test_kubectl_explain_documents_fields(cp: ControlPlane) -> None:
    out = cp.kubectl("explain", "jobs.spec.secretEnv", "--api-version=joblet.io/v1alpha1").stdout
    assert "the values never appear in the Job object" in out
