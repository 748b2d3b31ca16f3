"""``--schedule``: RFC3339 passes through untouched, delays resolve against 'now' in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from joblet.schedule import parse_schedule

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-07-01T12:00:00Z",
        "2026-07-01T12:00:00.123456Z",
        "2026-07-01T14:00:00+02:00",
        "2026-07-01T09:30:00-02:30",
        "2026-07-01t12:00:00z",
    ],
)
def test_rfc3339_is_returned_as_is(text: str) -> None:
    assert parse_schedule(text, NOW) == text


def test_surrounding_space_is_ignored() -> None:
    assert parse_schedule(" 2026-07-01T12:00:00Z ", NOW) == "2026-07-01T12:00:00Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", "2026-03-01T12:00:30Z"),
        ("5m", "2026-03-01T12:05:00Z"),
        ("2h", "2026-03-01T14:00:00Z"),
        ("1h30m", "2026-03-01T13:30:00Z"),
        ("1d", "2026-03-02T12:00:00Z"),
        ("1d2h3m4s", "2026-03-02T14:03:04Z"),
        ("90m", "2026-03-01T13:30:00Z"),
        ("720h", "2026-03-31T12:00:00Z"),
    ],
)
def test_relative_delays(text: str, expected: str) -> None:
    assert parse_schedule(text, NOW) == expected


def test_relative_result_is_utc_whatever_the_local_zone() -> None:
    now = datetime(2026, 3, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert parse_schedule("10m", now) == "2026-03-01T12:10:00Z"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "soon",
        "5",
        "5 m",
        "m5",
        "1m1h",  # units out of order
        "-5m",
        "1.5h",
        "5w",
        "2026-07-01",
        "2026-07-01T12:00:00",  # no zone: ambiguous
        "2026-13-01T12:00:00Z",  # month 13
        "2026-02-30T12:00:00Z",
        "tomorrow 12:00",
    ],
)
def test_bad_input_is_a_clear_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="schedule"):
        parse_schedule(text, NOW)


def test_zero_delay_refused() -> None:
    with pytest.raises(ValueError, match="more than zero"):
        parse_schedule("0s", NOW)


def test_naive_now_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("5m", datetime(2026, 1, 1))
