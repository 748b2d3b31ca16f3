"""Job user parsing and the capability helpers that need no privileges."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from node_agent.isolation import caps, user
from node_agent.isolation.errors import CapabilityError, IsolationError, UserError
from node_agent.isolation.user import JobUser, parse_user


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("65532:65532", JobUser(65532, 65532)),
        ("65532", JobUser(65532, 65532)),
        ("1000:100", JobUser(1000, 100)),
        ("4294967294:1", JobUser(4294967294, 1)),
        ("007:8", JobUser(7, 8)),
    ],
)
def test_parse_user_good(text: str, expected: JobUser) -> None:
    assert parse_user(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":",
        "65532:",
        ":65532",
        "nobody",
        "65532:nogroup",
        "-1",
        "+5",
        " 5",
        "5 ",
        "5_000",
        "0x10",
        "1:2:3",
        "١٢٣",  # non-ASCII digits, which int() would accept
        "4294967295",  # (uid_t)-1 means "unchanged" to setresuid
        "99999999999",
    ],
)
def test_parse_user_bad(text: str) -> None:
    with pytest.raises(UserError) as info:
        parse_user(text)
    assert isinstance(info.value, IsolationError)
    assert info.value.step == "job user"


@pytest.mark.parametrize("text", ["0", "0:0", "0:65532", "65532:0"])
def test_parse_user_refuses_root_unless_allowed(text: str) -> None:
    with pytest.raises(UserError, match="root"):
        parse_user(text)
    parsed = parse_user(text, allow_root=True)
    assert (parsed.uid, parsed.gid) == tuple(int(p) for p in (text.split(":") * 2)[:2])


def test_bad_user_message_says_what_is_expected() -> None:
    with pytest.raises(UserError) as info:
        parse_user("nobody")
    assert "'nobody'" in str(info.value)
    assert "UID:GID" in str(info.value)


def test_job_user_validates_its_fields() -> None:
    assert JobUser(1, 2, (3, 4)).groups == (3, 4)
    bad_users: list[Callable[[], JobUser]] = [
        lambda: JobUser(-1, 1),
        lambda: JobUser(1, 0xFFFFFFFF),
        lambda: JobUser(1, 1, (-5,)),
        lambda: JobUser(True, 1),
        lambda: JobUser(1, 1, tuple(range(1, user.MAX_GROUPS + 2))),
    ]
    for bad in bad_users:
        with pytest.raises(UserError):
            bad()


def test_job_user_is_frozen() -> None:
    u = JobUser(1, 1)
    with pytest.raises(AttributeError):
        u.uid = 0  # type: ignore[misc]


def test_switch_user_refuses_root_before_touching_anything() -> None:
    before = caps.status_caps()
    with pytest.raises(UserError, match="root"):
        user.switch_user(JobUser(0, 0))
    assert caps.status_caps() == before


def test_status_caps_parses_proc() -> None:
    values = caps.status_caps()
    assert set(values) == {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}
    assert caps.current_effective() == values["CapEff"]
    text = Path("/proc/self/status").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("CapEff:"))
    assert caps.current_effective() == int(line.split()[1], 16)


def test_last_cap_reads_the_kernel_value() -> None:
    expected = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    assert caps.last_cap() == expected
    assert expected >= 37  # CAP_AUDIT_READ exists on every kernel we support


def test_capability_error_is_an_isolation_error() -> None:
    err = CapabilityError("drop bounding set", "cannot drop capability 8")
    assert isinstance(err, IsolationError)
    assert str(err) == "drop bounding set: cannot drop capability 8"
    assert (err.step, err.message) == ("drop bounding set", "cannot drop capability 8")
