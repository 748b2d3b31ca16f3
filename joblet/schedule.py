"""Turn the user's ``--schedule`` text into the RFC3339 time RunJobRequest.schedule carries.

Users write either an absolute RFC3339 time or a delay from now ("30s", "5m", "1h30m", "1d");
the agent only understands the former, so delays are resolved here against the caller's clock.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_UNITS = ("days", "hours", "minutes", "seconds")


def parse_schedule(text: str, now: datetime) -> str:
    """Return ``text`` unchanged if it is RFC3339, or ``now`` + the relative delay, in UTC.

    ``now`` must be timezone-aware. Raises ValueError with the accepted forms otherwise.
    """
    if now.tzinfo is None:
        raise ValueError("parse_schedule needs a timezone-aware 'now'")
    value = text.strip()
    if _RFC3339.fullmatch(value):
        try:
            datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            raise ValueError(f"schedule {text!r}: not a valid date/time") from None
        return value
    match = _RELATIVE.fullmatch(value)
    if value and match:
        delay = timedelta(
            **{unit: int(n) for unit, n in zip(_UNITS, match.groups(), strict=True) if n}
        )
        if delay <= timedelta(0):
            raise ValueError(f"schedule {text!r}: the delay must be more than zero")
        when = (now + delay).astimezone(UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise ValueError(
        f"schedule {text!r}: expected RFC3339 (2025-07-01T12:00:00Z) or a delay such as "
        "30s, 5m, 2h, 1h30m, 1d"
    )
