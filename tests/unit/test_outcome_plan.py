"""Pure pieces of a job's life: what an exit record means, and what a launch plan holds."""

from __future__ import annotations

from node_agent.isolation.plan import (
    CgroupLimits,
    HostLayout,
    LaunchPlan,
    hostname_for,
    job_env,
    mask_values,
    root_mounts,
)
from node_agent.jobs.model import Status
from node_agent.jobs.outcome import interpret


def test_interpret_outcomes() -> None:
    assert interpret({"exit_code": 0}) == (Status.COMPLETED, 0, "")
    assert interpret({"exit_code": 3})[:2] == (Status.FAILED, 3)
    st, code, msg = interpret({"signal": 9, "oom_killed": True, "memory_limit_mb": 32})
    assert (st, code) == (Status.FAILED, 137) and "memory limit of 32 MB" in msg
    assert interpret({"signal": 15, "stopped": True})[:2] == (Status.STOPPED, 143)
    st, code, msg = interpret({"launch_error": "exec: command 'nope' not found"})
    assert (st, code) == (Status.FAILED, -1) and "nope" in msg
    assert "SIGSEGV" in interpret({"signal": 11})[2]


def test_hostname_is_a_valid_label() -> None:
    assert hostname_for("My Job_1!", "abcdef12-0000") == "my-job-1"
    assert hostname_for("", "abcdef12-0000") == "job-abcdef12"


def test_env_and_masking() -> None:
    env = job_env(
        (("A", "1"),), (("TOKEN", "sekrit-value"),), uuid="u", hostname="h", work_dir="/work"
    )
    d = dict(env)
    assert d["A"] == "1" and d["TOKEN"] == "sekrit-value" and d["JOB_ID"] == "u"
    assert mask_values((("A", "abc"), ("B", "longer-secret"), ("C", "longer"))) == (
        "longer-secret",
        "longer",
    )


def test_root_mounts_order_and_round_trip() -> None:
    layout = HostLayout(dirs=("/usr", "/etc"), links=(("/bin", "usr/bin"),))
    mounts = root_mounts(layout, "/state/jobs/u/work", 64)
    kinds = [(m.kind, m.target) for m in mounts]
    assert kinds == [
        ("bind-ro", "/usr"),
        ("bind-ro", "/etc"),
        ("symlink", "/bin"),
        ("bind-rw", "/work"),
        ("tmpfs", "/tmp"),
    ]
    plan = LaunchPlan(
        uuid="u",
        argv=("echo", "hi"),
        env=(("A", "1"),),
        mask=("s3cret",),
        hostname="h",
        uid=65532,
        gid=65532,
        work_dir="/work",
        rootfs="/r",
        mounts=mounts,
        limits=CgroupLimits(max_cpu=50, io_device=(254, 0)),
        job_dir="/state/jobs/u",
        cgroup_root="/sys/fs/cgroup",
        cgroup_version="v1",
        log_segment_bytes=1,
        log_max_bytes=2,
        stop_grace=1.5,
    )
    assert LaunchPlan.from_json(plan.to_json()) == plan
