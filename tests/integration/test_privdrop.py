"""The real privilege drop, in a forked child, as the job launcher does it.

The child runs switch_user(65532:65532) and seccomp.install() — irreversible, hence a fork —
then probes what a job could and could not do, and reports through a pipe as JSON.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from node_agent.isolation import caps, seccomp, user
from node_agent.isolation.errors import CapabilityError, UserError
from node_agent.sys import libc

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users"),
]

JOB_UID = 65532
JOB_PATH = {"PATH": "/usr/local/bin:/usr/bin:/bin"}  # what a job sees; no root-only dirs
SIGCHLD = 17
PTRACE_TRACEME = 0
_libc = ctypes.CDLL(None, use_errno=True)


def run_in_child(probe: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Fork, run ``probe`` in the child, return its JSON result (or the exception it raised)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            result = probe()
        except BaseException as exc:
            result = {"exception": f"{type(exc).__name__}: {exc}"}
        try:
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    out: dict[str, Any] = json.loads(data)
    return out


def errno_of(call: Callable[[], object]) -> int:
    """0 if ``call`` succeeded, else the errno of the OSError it raised."""
    try:
        call()
    except OSError as exc:
        return exc.errno or -1
    return 0


def status_fields() -> dict[str, str]:
    with open("/proc/self/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def raw_clone_errno(flags: int) -> int:
    """clone(2) straight through syscall(2), as a program that bypasses libc would."""
    nr = seccomp.SYSCALL_TABLES[seccomp.host_arch()]["clone"]
    ret = _libc.syscall(
        ctypes.c_long(nr),
        ctypes.c_long(flags),
        ctypes.c_long(0),
        ctypes.c_long(0),
        ctypes.c_long(0),
        ctypes.c_long(0),
    )
    if ret == 0:  # we are a new child: the filter let it through
        os._exit(0)
    if ret > 0:
        os.waitpid(ret, 0)
        return 0
    return ctypes.get_errno()


def fork_exit_code(body: Callable[[], int]) -> int:
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = body()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def sh(cmd: str) -> tuple[int, str]:
    p = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, cwd="/", env=JOB_PATH)
    return p.returncode, p.stdout + p.stderr


def job_probe() -> dict[str, Any]:
    user.switch_user(user.JobUser(JOB_UID, JOB_UID))
    seccomp.install()
    st = status_fields()
    res: dict[str, Any] = {
        "resuid": list(os.getresuid()),
        "resgid": list(os.getresgid()),
        "groups": os.getgroups(),
        "status": {
            k: st[k]
            for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
        },
        "current_effective": caps.current_effective(),
        "mount": errno_of(lambda: libc.mount("none", "/mnt", "tmpfs", 0, None)),
        "umount2": errno_of(lambda: libc.umount2("/proc", libc.MNT_DETACH)),
        "unshare_ns": errno_of(lambda: libc.unshare(libc.CLONE_NEWNS)),
        "unshare_user": errno_of(lambda: libc.unshare(libc.CLONE_NEWUSER)),
        "clone_newuser": raw_clone_errno(libc.CLONE_NEWUSER | SIGCHLD),
        "clone_plain": raw_clone_errno(SIGCHLD),
        "ptrace_traceme": (
            ctypes.get_errno() if _libc.ptrace(PTRACE_TRACEME, 0, None, None) != 0 else 0
        ),
        "capset_regain": errno_of(lambda: libc.capset(1 << 21, 1 << 21, 0)),
    }
    fd = os.open("/proc/self/ns/net", os.O_RDONLY)
    res["setns"] = errno_of(lambda: libc.setns(fd, libc.CLONE_NEWNET))
    os.close(fd)

    # Ordinary work still runs: exec after seccomp, fork, threads (clone3 -> ENOSYS -> clone).
    py = subprocess.run(
        ["python3", "-c", "print(1)"], capture_output=True, text=True, cwd="/", env=JOB_PATH
    )
    res["python"] = [py.returncode, py.stdout, py.stderr]
    res["sh_ls"] = sh("ls / | wc -l")
    res["id"] = sh("id -u; id -g")
    res["exec_status"] = sh("grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status")
    res["own_proc"] = sh("ls /proc/self/fd >/dev/null && head -c 1 /proc/self/maps >/dev/null")
    res["fork"] = fork_exit_code(lambda: 7)
    res["grandchild_unshare_user"] = fork_exit_code(
        lambda: errno_of(lambda: libc.unshare(libc.CLONE_NEWUSER))
    )
    box: list[str] = []
    t = threading.Thread(target=lambda: box.append("ran"))
    t.start()
    t.join()
    res["thread"] = box
    if shutil.which("gcc", path=JOB_PATH["PATH"]):
        res["gcc"] = sh(
            "d=$(mktemp -d) && printf 'int main(void){return 3;}' > $d/a.c && "
            "gcc -o $d/a $d/a.c && $d/a; echo rc=$?; rm -rf $d"
        )
    return res


@pytest.fixture(scope="module")
def job() -> Iterator[dict[str, Any]]:
    result = run_in_child(job_probe)
    assert "exception" not in result, result.get("exception")
    yield result


def test_identity_is_the_job_user(job: dict[str, Any]) -> None:
    assert job["resuid"] == [JOB_UID] * 3
    assert job["resgid"] == [JOB_UID] * 3
    assert job["groups"] == []
    assert job["id"] == [0, f"{JOB_UID}\n{JOB_UID}\n"]


def test_no_capabilities_left(job: dict[str, Any]) -> None:
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(job["status"][key], 16) == 0, key
    assert job["current_effective"] == 0
    assert job["capset_regain"] == errno.EPERM


def test_no_new_privs_and_seccomp_filter(job: dict[str, Any]) -> None:
    assert job["status"]["NoNewPrivs"] == "1"
    assert job["status"]["Seccomp"] == "2"


def test_exec_inherits_the_restrictions(job: dict[str, Any]) -> None:
    rc, out = job["exec_status"]
    assert rc == 0
    fields = dict(line.split(":\t") for line in out.strip().splitlines())
    assert int(fields["CapEff"], 16) == 0
    assert int(fields["CapBnd"], 16) == 0
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"


def test_denied_calls_fail_with_eperm(job: dict[str, Any]) -> None:
    assert job["mount"] == errno.EPERM
    assert job["umount2"] == errno.EPERM
    assert job["unshare_ns"] == errno.EPERM
    assert job["unshare_user"] == errno.EPERM
    assert job["setns"] == errno.EPERM
    # PTRACE_TRACEME needs no privilege at all: only the filter stops it.
    assert job["ptrace_traceme"] == errno.EPERM


def test_no_new_user_namespace_by_clone(job: dict[str, Any]) -> None:
    # Creating a user namespace needs no privilege either: only the filter stops it.
    assert job["clone_newuser"] == errno.EPERM
    assert job["grandchild_unshare_user"] == errno.EPERM
    assert job["clone_plain"] == 0


def test_ordinary_programs_still_run(job: dict[str, Any]) -> None:
    assert job["python"] == [0, "1\n", ""]
    rc, out = job["sh_ls"]
    assert rc == 0 and int(out.strip()) > 0
    assert job["fork"] == 7
    assert job["thread"] == ["ran"]
    assert job["own_proc"] == [0, ""]  # exec made the job dumpable again


def test_gcc_still_compiles(job: dict[str, Any]) -> None:
    if "gcc" not in job:
        pytest.skip("gcc not installed")
    rc, out = job["gcc"]
    assert rc == 0 and out.strip().endswith("rc=3"), out


def test_user_namespaces_work_without_the_filter() -> None:
    """Control: the clone/unshare checks above prove something only if the kernel would
    otherwise let an unprivileged user create a user namespace."""

    def probe() -> dict[str, Any]:
        os.setresgid(JOB_UID, JOB_UID, JOB_UID)
        os.setresuid(JOB_UID, JOB_UID, JOB_UID)
        return {
            "unshare_user": fork_exit_code(
                lambda: errno_of(lambda: libc.unshare(libc.CLONE_NEWUSER))
            )
        }

    result = run_in_child(probe)
    if result["unshare_user"] != 0:
        pytest.skip(f"this kernel refuses unprivileged user namespaces (errno {result})")


def test_switch_user_as_non_root_fails_with_a_typed_error() -> None:
    def probe() -> dict[str, Any]:
        os.setresuid(1000, 1000, 1000)
        try:
            user.switch_user(user.JobUser(JOB_UID, JOB_UID))
        except (CapabilityError, UserError) as exc:
            return {"type": type(exc).__name__, "step": exc.step, "msg": str(exc)}
        return {"type": None}

    result = run_in_child(probe)
    assert result["type"] == "CapabilityError"
    assert result["step"] == "drop bounding set"
    assert "CAP_SETPCAP" in result["msg"]


def test_supplementary_groups_are_set() -> None:
    def probe() -> dict[str, Any]:
        user.switch_user(user.JobUser(JOB_UID, JOB_UID, (JOB_UID + 1, JOB_UID + 2)))
        return {"groups": sorted(os.getgroups()), "gid": os.getgid()}

    assert run_in_child(probe) == {"groups": [JOB_UID + 1, JOB_UID + 2], "gid": JOB_UID}


def test_clear_all_and_drop_bounding_set_as_root() -> None:
    def probe() -> dict[str, Any]:
        caps.drop_bounding_set()
        bnd = caps.status_caps()["CapBnd"]
        caps.clear_all()
        st = caps.status_caps()
        return {"bnd": bnd, "eff": st["CapEff"], "prm": st["CapPrm"], "uid": os.getuid()}

    assert run_in_child(probe) == {"bnd": 0, "eff": 0, "prm": 0, "uid": 0}
