"""The local control plane behaves like a production one where the operator depends on it: schema
validation of custom resources, the status subresource, finalizers, watches, garbage collection,
namespace deletion, RBAC, service-account machinery and Helm. Everything goes through the real
kubectl and helm binaries, as a user would."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from joblet.devcluster import ControlPlane

pytestmark = pytest.mark.cluster

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.e2e.joblet.io
spec:
  group: e2e.joblet.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wdg]}
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {type: integer, minimum: 1, maximum: 10}
                color: {type: string, enum: [red, green, blue]}
            status:
              type: object
              properties:
                phase: {type: string}
"""


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _get(cp: ControlPlane, *args: str) -> dict[str, Any]:
    out = cp.kubectl("get", *args, "-o", "json").stdout
    doc: dict[str, Any] = json.loads(out)
    return doc


def _eventually(pred: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout:.0f} s")


def _exists(cp: ControlPlane, *args: str) -> bool:
    return cp.kubectl("get", *args, "-o", "name", check=False).returncode == 0


@pytest.fixture(scope="module")
def widget_crd(control_plane: ControlPlane) -> str:
    control_plane.kubectl("apply", "-f", "-", input=CRD)
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.e2e.joblet.io", "--timeout=30s"
    )
    return "widgets.e2e.joblet.io"


@pytest.fixture
def namespace(control_plane: ControlPlane) -> str:
    name = _unique("e2e")
    control_plane.kubectl("create", "namespace", name)
    return name


def _widget(name: str, ns: str, spec: str) -> str:
    return (
        f"apiVersion: e2e.joblet.io/v1alpha1\nkind: Widget\n"
        f"metadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    )


def test_server_reports_pinned_version(control_plane: ControlPlane) -> None:
    info = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    pinned = control_plane.binaries.versions.kubernetes
    assert info["serverVersion"]["gitVersion"] == pinned
    assert info["clientVersion"]["gitVersion"] == pinned


def test_crd_schema_accepts_valid_and_rejects_invalid(
    control_plane: ControlPlane, widget_crd: str, namespace: str
) -> None:
    ok = control_plane.kubectl(
        "apply", "-f", "-", input=_widget("good", namespace, "{size: 3, color: red}")
    )
    assert "widget.e2e.joblet.io/good created" in ok.stdout
    bad = control_plane.kubectl(
        "apply", "-f", "-", input=_widget("bad", namespace, "{size: 0, color: purple}"), check=False
    )
    assert bad.returncode != 0
    assert 'The Widget "bad" is invalid' in bad.stderr
    assert (
        "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
        in bad.stderr
    )
    assert 'spec.color: Unsupported value: "purple": supported values: "red", "green", "blue"' in (
        bad.stderr
    )
    missing = control_plane.kubectl(
        "apply", "-f", "-", input=_widget("nosize", namespace, "{color: red}"), check=False
    )
    assert missing.returncode != 0
    assert "spec.size: Required value" in missing.stderr
    assert not _exists(control_plane, "widget", "bad", "-n", namespace)
    # Unknown fields: rejected under kubectl's default strict field validation, and pruned by
    # the structural schema (never stored) when validation is switched off.
    strict = control_plane.kubectl(
        "apply", "-f", "-", input=_widget("pruned", namespace, "{size: 2, bogus: 1}"), check=False
    )
    assert strict.returncode != 0
    assert 'unknown field "spec.bogus"' in strict.stderr
    control_plane.kubectl(
        "apply", "--validate=false", "-f", "-",
        input=_widget("pruned", namespace, "{size: 2, bogus: 1}"),
    )  # fmt: skip
    assert "bogus" not in _get(control_plane, "widget", "pruned", "-n", namespace)["spec"]


def test_status_subresource_separates_spec_and_status(
    control_plane: ControlPlane, widget_crd: str, namespace: str
) -> None:
    control_plane.kubectl("apply", "-f", "-", input=_widget("w", namespace, "{size: 1}"))
    control_plane.kubectl(
        "patch", "widget", "w", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", '{"status": {"phase": "Ready"}, "spec": {"size": 9}}',
    )  # fmt: skip
    obj = _get(control_plane, "widget", "w", "-n", namespace)
    assert obj["status"] == {"phase": "Ready"}
    assert obj["spec"]["size"] == 1, "a status write must not change spec"
    gen = obj["metadata"]["generation"]
    control_plane.kubectl(
        "patch", "widget", "w", "-n", namespace, "--type=merge",
        "-p", '{"status": {"phase": "Broken"}, "spec": {"size": 5}}',
    )  # fmt: skip
    obj = _get(control_plane, "widget", "w", "-n", namespace)
    assert obj["spec"]["size"] == 5
    assert obj["status"] == {"phase": "Ready"}, "a main-resource write must not change status"
    assert obj["metadata"]["generation"] == gen + 1


def test_finalizer_holds_deletion_until_removed(
    control_plane: ControlPlane, widget_crd: str, namespace: str
) -> None:
    manifest = _widget("held", namespace, "{size: 1}").replace(
        "namespace: ", "finalizers: [e2e.joblet.io/hold], namespace: "
    )
    control_plane.kubectl("apply", "-f", "-", input=manifest)
    control_plane.kubectl("delete", "widget", "held", "-n", namespace, "--wait=false")
    obj = _get(control_plane, "widget", "held", "-n", namespace)
    assert obj["metadata"]["deletionTimestamp"]
    control_plane.kubectl(
        "patch", "widget", "held", "-n", namespace, "--type=json",
        "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]',
    )  # fmt: skip
    _eventually(
        lambda: not _exists(control_plane, "widget", "held", "-n", namespace), 30, "deletion"
    )


def test_watch_streams_changes(control_plane: ControlPlane, namespace: str) -> None:
    watch = subprocess.Popen(
        [
            str(control_plane.binaries.kubectl), f"--kubeconfig={control_plane.kubeconfig}",
            "get", "configmaps", "-n", namespace, "--watch-only", "--output-watch-events",
            "-o", "jsonpath={.type} {.object.metadata.name}{\"\\n\"}",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # let the watch be established before the writes
        control_plane.kubectl("create", "configmap", "watched", "-n", namespace)
        control_plane.kubectl("delete", "configmap", "watched", "-n", namespace)
        assert watch.stdout is not None
        lines = [watch.stdout.readline().strip() for _ in range(2)]
    finally:
        watch.kill()
        watch.wait()
    assert lines == ["ADDED watched", "DELETED watched"]


def test_garbage_collector_deletes_dependents(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("create", "configmap", "owner", "-n", namespace)
    uid = _get(control_plane, "configmap", "owner", "-n", namespace)["metadata"]["uid"]
    for i in range(3):
        control_plane.kubectl(
            "apply", "-f", "-",
            input=json.dumps({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {
                    "name": f"dependent-{i}", "namespace": namespace,
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
                    ],
                },
            }),
        )  # fmt: skip
    control_plane.kubectl("delete", "configmap", "owner", "-n", namespace)
    _eventually(
        lambda: all(
            not _exists(control_plane, "configmap", f"dependent-{i}", "-n", namespace)
            for i in range(3)
        ),
        60,
        "dependents collected",
    )


def test_foreground_deletion_waits_for_dependents(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("create", "secret", "generic", "parent", "-n", namespace)
    uid = _get(control_plane, "secret", "parent", "-n", namespace)["metadata"]["uid"]
    control_plane.kubectl(
        "apply", "-f", "-",
        input=json.dumps({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": "child", "namespace": namespace,
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Secret", "name": "parent", "uid": uid,
                    "blockOwnerDeletion": True,
                }],
            },
        }),
    )  # fmt: skip
    control_plane.kubectl(
        "delete", "secret", "parent", "-n", namespace, "--cascade=foreground", "--timeout=60s"
    )
    assert not _exists(control_plane, "configmap", "child", "-n", namespace)
    assert not _exists(control_plane, "secret", "parent", "-n", namespace)


def test_deleted_namespace_finishes_deleting(control_plane: ControlPlane, widget_crd: str) -> None:
    ns = _unique("doomed")
    control_plane.kubectl("create", "namespace", ns)
    control_plane.kubectl("create", "configmap", "c", "-n", ns, "--from-literal=k=v")
    control_plane.kubectl("apply", "-f", "-", input=_widget("w", ns, "{size: 1}"))
    control_plane.kubectl("delete", "namespace", ns, "--wait=false")
    control_plane.kubectl("wait", "--for=delete", f"namespace/{ns}", "--timeout=90s")
    assert not _exists(control_plane, "namespace", ns)


def test_service_account_controllers_run(control_plane: ControlPlane, namespace: str) -> None:
    _eventually(
        lambda: _exists(control_plane, "serviceaccount", "default", "-n", namespace),
        30,
        "default service account",
    )
    _eventually(
        lambda: _exists(control_plane, "configmap", "kube-root-ca.crt", "-n", namespace),
        30,
        "kube-root-ca.crt",
    )
    token = control_plane.kubectl("create", "token", "default", "-n", namespace).stdout.strip()
    assert token.count(".") == 2  # a signed JWT


def test_limited_user_is_forbidden_what_its_role_does_not_grant(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl(
        "create", "role", "cm-reader", "-n", namespace, "--verb=get,list,watch",
        "--resource=configmaps",
    )  # fmt: skip
    control_plane.kubectl(
        "create", "rolebinding", "readers", "-n", namespace, "--role=cm-reader",
        "--group=e2e:readers",
    )  # fmt: skip
    control_plane.kubectl("create", "configmap", "visible", "-n", namespace)
    alice = control_plane.user_kubeconfig("alice", ["e2e:readers"])
    bob = control_plane.user_kubeconfig("bob", ["e2e:others"])

    listed = control_plane.kubectl("get", "configmaps", "-n", namespace, kubeconfig=alice)
    assert "visible" in listed.stdout
    who = json.loads(control_plane.kubectl("auth", "whoami", "-o", "json", kubeconfig=alice).stdout)
    assert who["status"]["userInfo"]["username"] == "alice"
    assert "e2e:readers" in who["status"]["userInfo"]["groups"]

    create = control_plane.kubectl(
        "create", "configmap", "nope", "-n", namespace, kubeconfig=alice, check=False
    )
    assert create.returncode != 0
    assert (
        f'configmaps is forbidden: User "alice" cannot create resource "configmaps" in API group'
        f' "" in the namespace "{namespace}"'
    ) in create.stderr
    secrets = control_plane.kubectl(
        "get", "secrets", "-n", namespace, kubeconfig=alice, check=False
    )
    assert secrets.returncode != 0
    assert 'User "alice" cannot list resource "secrets"' in secrets.stderr
    other_ns = control_plane.kubectl(
        "get", "configmaps", "-n", "default", kubeconfig=alice, check=False
    )
    assert other_ns.returncode != 0
    assert "forbidden" in other_ns.stderr
    stranger = control_plane.kubectl(
        "get", "configmaps", "-n", namespace, kubeconfig=bob, check=False
    )
    assert stranger.returncode != 0
    assert 'User "bob" cannot list resource "configmaps"' in stranger.stderr


def _write_chart(root: Path) -> Path:
    chart = root / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: tiny\nversion: 0.1.0\ndescription: e2e test chart\n"
    )
    (chart / "values.yaml").write_text("greeting: hello\nreplicas: 2\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\n"
        "metadata:\n  name: {{ .Release.Name }}-config\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )
    (chart / "templates" / "serviceaccount.yaml").write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {{ .Release.Name }}-sa\n"
    )
    (chart / "templates" / "role.yaml").write_text(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n"
        "metadata:\n  name: {{ .Release.Name }}-role\n"
        "rules:\n  - apiGroups: ['']\n    resources: [configmaps]\n    verbs: [get]\n"
    )
    return chart


def test_helm_install_and_uninstall(control_plane: ControlPlane, tmp_path: Path) -> None:
    chart = _write_chart(tmp_path)
    ns = _unique("helm")
    lint = control_plane.helm("lint", str(chart))
    assert "1 chart(s) linted, 0 chart(s) failed" in lint.stdout
    control_plane.helm(
        "install", "demo", str(chart), "-n", ns, "--create-namespace",
        "--set", "greeting=bonjour", "--wait", "--timeout=60s",
    )  # fmt: skip
    cm = _get(control_plane, "configmap", "demo-config", "-n", ns)
    assert cm["data"] == {"greeting": "bonjour"}
    assert cm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert _exists(control_plane, "serviceaccount", "demo-sa", "-n", ns)
    assert _exists(control_plane, "role", "demo-role", "-n", ns)
    releases = json.loads(control_plane.helm("list", "-n", ns, "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in releases] == [("demo", "deployed")]

    control_plane.helm("uninstall", "demo", "-n", ns, "--wait", "--timeout=60s")
    for kind, name in (
        ("configmap", "demo-config"),
        ("serviceaccount", "demo-sa"),
        ("role", "demo-role"),
    ):
        assert not _exists(control_plane, kind, name, "-n", ns), f"{kind}/{name} left behind"
    assert json.loads(control_plane.helm("list", "-n", ns, "-o", "json").stdout) == []
    control_plane.kubectl("delete", "namespace", ns, "--wait=false")
