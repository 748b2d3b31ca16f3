"""``joblet workflow run`` reads the YAML only to fill RunWorkflowRequest: job names, the
chosen workflow of a multi-workflow file, and the local files its jobs upload."""

from __future__ import annotations

from pathlib import Path

import pytest

from joblet.cli.workflows import WorkflowFileError, build_workflow_request, load_workflow
from joblet.uploads import UploadError

SINGLE = """
name: etl
jobs:
  extract:
    command: python3
    args: [extract.py]
    uploads:
      files: [extract.py, lib/common.py]
  transform:
    command: python3
    args: [transform.py]
    uploads:
      files: [transform.py, lib/common.py]
    requires:
      - extract: COMPLETED
  report:
    command: echo
    args: [done]
    requires:
      - transform: FINISHED
"""

MULTI = """
workflows:
  nightly:
    jobs:
      a: {command: "true"}
  weekly:
    jobs:
      b: {command: "true"}
      c: {command: "true"}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "lib").mkdir()
    (tmp_path / "extract.py").write_text("print('e')\n")
    (tmp_path / "transform.py").write_text("print('t')\n")
    (tmp_path / "transform.py").chmod(0o755)
    (tmp_path / "lib" / "common.py").write_text("X = 1\n")
    (tmp_path / "etl.yaml").write_text(SINGLE)
    (tmp_path / "multi.yaml").write_text(MULTI)
    return tmp_path


def test_single_workflow_request(project: Path) -> None:
    request = build_workflow_request(load_workflow(str(project / "etl.yaml")))
    assert request.workflow == "etl.yaml"
    assert request.total_jobs == 3
    assert list(request.job_order) == ["extract", "transform", "report"]
    assert request.yaml_content == SINGLE
    files = {f.path: f for f in request.workflow_files}
    assert list(files) == ["extract.py", "lib/common.py", "transform.py"]
    assert files["transform.py"].mode == 0o755
    assert files["lib/common.py"].content == b"X = 1\n"


def test_named_workflow_of_a_multi_file(project: Path) -> None:
    request = build_workflow_request(load_workflow(f"{project / 'multi.yaml'}:weekly"))
    assert request.workflow == "multi.yaml:weekly"
    assert list(request.job_order) == ["b", "c"]


@pytest.mark.parametrize(
    ("reference", "content", "message"),
    [
        ("multi.yaml", None, "several workflows"),
        ("multi.yaml:monthly", None, "no workflow named 'monthly'"),
        ("etl.yaml:x", None, "no 'workflows' map"),
        ("missing.yaml", None, "No such file"),
        ("bad.yaml", "jobs: [\n", "not valid YAML"),
        ("bad.yaml", "- 1\n", "expected a mapping"),
        ("bad.yaml", "name: x\n", "has no jobs"),
        ("bad.yaml", "jobs:\n  a: {uploads: [x]}\n", "uploads must be"),
        ("bad.yaml", "jobs:\n  a: {uploads: {files: [/etc/passwd]}}\n", "relative path"),
        ("bad.yaml", "jobs:\n  a: {uploads: {files: [../x]}}\n", "relative path"),
    ],
)
def test_bad_workflow_files(
    project: Path, reference: str, content: str | None, message: str
) -> None:
    if content is not None:
        (project / "bad.yaml").write_text(content)
    with pytest.raises(WorkflowFileError, match=message):
        load_workflow(str(project / reference))


def test_missing_upload_is_refused(project: Path) -> None:
    (project / "extract.py").unlink()
    with pytest.raises(UploadError, match=r"extract\.py"):
        build_workflow_request(load_workflow(str(project / "etl.yaml")))
