"""Time conventions: instants are UTC ``timestamptz``; a bare date means the start of
that day in the organisation's time zone (``ORG__TIME_ZONE``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo


def start_of_day(day: date, time_zone: str) -> datetime:
    """00:00 of ``day`` in ``time_zone`` (an IANA name), as an aware UTC instant."""
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(time_zone)).astimezone(UTC)


def as_instant(value: datetime | date | None, time_zone: str) -> datetime:
    """An instant from an instant, a date (start of that day in ``time_zone``) or
    ``None`` (now)."""
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return start_of_day(value, time_zone)
