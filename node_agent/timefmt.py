"""RFC3339 times as the Joblet wire uses them (UTC, `Z` suffix)."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def fmt(t: datetime) -> str:
    """RFC3339 in UTC with microseconds when there are any (Go's RFC3339 parser reads both)."""
    t = t.astimezone(UTC)
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_str() -> str:
    return fmt(now())


def parse(text: str) -> datetime:
    """Parse RFC3339; raises ValueError with the offending text."""
    s = text.strip()
    if not s:
        raise ValueError("empty time")
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    # Python < 3.12 rejects more than 6 fractional digits; trim nanoseconds.
    if "." in s:
        head, _, rest = s.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        s = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC3339 time (e.g. 2026-01-02T15:04:05Z)") from None
    if t.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (add Z or an offset like +02:00)")
    if "T" not in text and "t" not in text:
        raise ValueError(f"{text!r} is not an RFC3339 time (e.g. 2026-01-02T15:04:05Z)")
    return t.astimezone(UTC)
