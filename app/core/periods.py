"""Time conventions and the fiscal calendar.

Instants are UTC ``timestamptz``; a bare date means the start of that day in the
organisation's time zone (``ORG__TIME_ZONE``). Fiscal periods follow
``ORG__FISCAL_YEAR_START_MONTH`` and are named by the calendar year in which the fiscal
year *ends* (start month April: ``FY2027`` = 2026-04-01 to 2027-04-01), the usual
convention (e.g. the UK and Japanese government fiscal years). Labels:

* ``FY2027`` — the fiscal year;
* ``FY2027-Q1`` … ``FY2027-Q4`` — its quarters;
* ``FY2027-M01`` … ``FY2027-M12`` — its months, or a calendar month ``2026-04``.

Every period is a half-open ``[start, end)`` pair of instants: local midnights in the
organisation's time zone, converted to UTC (so a DST change moves the UTC offset, never
the local boundary).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from zoneinfo import ZoneInfo


class PeriodKind(StrEnum):
    month = "month"
    quarter = "quarter"
    fiscal_year = "fiscal_year"


@dataclass(frozen=True, slots=True)
class FiscalPeriod:
    """A named fiscal period and its ``[start, end)`` instants (UTC)."""

    label: str
    kind: PeriodKind
    start: datetime
    end: datetime


_LABEL = re.compile(r"^FY(\d{4})(?:-(Q[1-4]|M(?:0[1-9]|1[0-2])))?$")
_CALENDAR_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


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


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


class FiscalCalendar:
    """Resolves period labels to instants and instants to periods, for one organisation
    time zone and fiscal-year start month (1-12)."""

    def __init__(self, time_zone: str, start_month: int) -> None:
        if not 1 <= start_month <= 12:
            raise ValueError("start_month must be 1-12")
        self.time_zone = time_zone
        self.start_month = start_month

    def _first_month_of(self, fiscal_year: int) -> tuple[int, int]:
        """Calendar (year, month) where fiscal year ``fiscal_year`` starts."""
        if self.start_month == 1:
            return fiscal_year, 1
        return fiscal_year - 1, self.start_month

    def _span(self, year: int, month: int, months: int) -> tuple[datetime, datetime]:
        end_year, end_month = _add_months(year, month, months)
        return (
            start_of_day(date(year, month, 1), self.time_zone),
            start_of_day(date(end_year, end_month, 1), self.time_zone),
        )

    def resolve(self, label: str) -> FiscalPeriod:
        """The period a label names. Raises ValueError for an unknown label."""
        calendar_month = _CALENDAR_MONTH.match(label)
        if calendar_month:
            year, month = int(calendar_month[1]), int(calendar_month[2])
            start, end = self._span(year, month, 1)
            return FiscalPeriod(label, PeriodKind.month, start, end)
        match = _LABEL.match(label)
        if not match:
            raise ValueError(
                f"{label!r} is not a period: use FY2027, FY2027-Q1, FY2027-M01 or 2026-04"
            )
        fiscal_year = int(match[1])
        year, month = self._first_month_of(fiscal_year)
        part = match[2]
        if part is None:
            start, end = self._span(year, month, 12)
            return FiscalPeriod(label, PeriodKind.fiscal_year, start, end)
        if part.startswith("Q"):
            year, month = _add_months(year, month, 3 * (int(part[1]) - 1))
            start, end = self._span(year, month, 3)
            return FiscalPeriod(label, PeriodKind.quarter, start, end)
        year, month = _add_months(year, month, int(part[1:]) - 1)
        start, end = self._span(year, month, 1)
        return FiscalPeriod(label, PeriodKind.month, start, end)

    def containing(self, instant: datetime, kind: PeriodKind) -> FiscalPeriod:
        """The fiscal period of ``kind`` that contains ``instant`` (local date decides)."""
        local = instant.astimezone(ZoneInfo(self.time_zone))
        offset = (local.month - self.start_month) % 12
        fiscal_year = local.year + (
            1 if self.start_month != 1 and local.month >= self.start_month else 0
        )
        if kind == PeriodKind.fiscal_year:
            return self.resolve(f"FY{fiscal_year}")
        if kind == PeriodKind.quarter:
            return self.resolve(f"FY{fiscal_year}-Q{offset // 3 + 1}")
        return self.resolve(f"FY{fiscal_year}-M{offset + 1:02d}")
