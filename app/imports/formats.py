"""The CSV formats the importer reads, one per resource (documented in README).

Each column has a parser that checks a cell and turns it into the canonical text COPY
loads into the staging column's type, or raises ValueError with a reason a person can
act on. References to other records are external refs
(``client_ref`` = a client's ``external_ref``), resolved in SQL after the rows are
staged. Instants accept RFC 3339 or a bare date (00:00 of that day in the
organisation's time zone).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from app.core.money import _countries, _currencies, currency_decimals
from app.core.schemas import _zones

Parser = Callable[[str], str | None]
MEMO_SIZE = 4096  # distinct cells remembered per parser (dates repeat; memory stays flat)


@dataclass(frozen=True)
class Column:
    """A column of a format: its staging type and a parser from a stripped cell to the
    canonical text COPY loads into that type, None for a blank cell (ValueError with
    the reason)."""

    name: str
    pg_type: str
    parse: Parser
    required: bool = False


def _memo(parse: Parser) -> Parser:
    """``parse`` remembering its answers for the last MEMO_SIZE distinct cells."""
    seen: dict[str, str | None] = {}

    def remembered(value: str) -> str | None:
        hit = seen.get(value)
        if hit is None:
            hit = parse(value)
            if len(seen) >= MEMO_SIZE:
                seen.clear()
            seen[value] = hit
        return hit

    return remembered


def text(max_length: int) -> Parser:
    def parse(value: str) -> str | None:
        if len(value) > max_length:
            raise ValueError(f"longer than {max_length} characters")
        return value or None

    return parse


def one_of(*choices: str) -> Parser:
    allowed = frozenset(choices)

    def parse(value: str) -> str | None:
        if value in allowed or not value:
            return value or None
        raise ValueError(f"{value!r} is not one of {', '.join(choices)}")

    return parse


_PLAIN_DECIMAL = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]+)?")  # ASCII: COPY reads it as is
# Commas only between groups of three digits: "1,5" (a decimal comma) is no number here.
_GROUPED_DECIMAL = re.compile(r"-?\d{1,3}(?:,\d{3})+(\.\d+)?")


def decimal(value: str) -> str | None:
    """A decimal number below 10**15 in magnitude (``1,234.5`` and ``1e3`` accepted), as
    plain ASCII digits: ``-?[0-9]+(\\.[0-9]+)?``."""
    if _PLAIN_DECIMAL.fullmatch(value) or not value:
        return value or None
    try:
        number = Decimal(value.replace(",", "") if _GROUPED_DECIMAL.fullmatch(value) else value)
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not a decimal number") from exc
    if not number.is_finite() or abs(number) >= Decimal("1e15"):
        raise ValueError(f"{value!r} is out of range")
    return format(number, "f")


def decimals_of(number: str) -> int:
    """Significant fraction digits of a :func:`decimal` answer (``12.50`` → 1)."""
    return len(number.partition(".")[2].rstrip("0"))


def is_positive(number: str) -> bool:
    """Whether a :func:`decimal` answer is above zero."""
    return not number.startswith("-") and number.strip("0.") != ""


def integer(value: str) -> str | None:
    if not value:
        return None
    if not re.fullmatch(r"-?\d{1,9}", value):
        raise ValueError(f"{value!r} is not a whole number")
    return str(int(value))  # ASCII digits for COPY


def boolean(value: str) -> str | None:
    if not value:
        return None
    lowered = value.lower()
    if lowered in ("true", "yes", "1", "y"):
        return "t"
    if lowered in ("false", "no", "0", "n"):
        return "f"
    raise ValueError(f"{value!r} is not true/false")


def code_in(known: frozenset[str], what: str, *, upper: bool = True) -> Parser:
    """A code from ``known`` (ISO currencies, countries, IANA zones); upper-cased first
    unless ``upper`` is False."""

    def parse(value: str) -> str | None:
        code = value.upper() if upper else value
        if code in known or not value:
            return code or None
        raise ValueError(f"{value!r} is not {what}")

    return parse


def email(value: str) -> str | None:
    if not value:
        return None
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) or len(value) > 320:
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _day(value: str) -> str | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


day = _memo(_day)


def utc_text(moment: datetime) -> str:
    """An aware instant as ISO 8601 in UTC (``2024-02-10T09:00:00+00:00``): these strings
    sort as the instants do."""
    return moment.astimezone(UTC).isoformat()


# RFC 3339 as PostgreSQL reads it too (offsets within ±14:59): sent to COPY as written.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:0[0-9]|1[0-4]):[0-5][0-9])"
)


def instant_in(zone: str) -> Parser:
    """RFC 3339 with an offset, or a bare date meaning 00:00 in ``zone``. Answers the
    cell itself when it is plain RFC 3339, else :func:`utc_text`."""
    tz = ZoneInfo(zone)

    def bad(value: str) -> ValueError:
        return ValueError(f"{value!r} is not a date or an RFC 3339 instant")

    def parse_day(value: str) -> str | None:
        try:
            return utc_text(datetime.combine(date.fromisoformat(value), datetime.min.time(), tz))
        except (ValueError, OverflowError) as exc:
            raise bad(value) from exc

    on_day = _memo(parse_day)

    def parse(value: str) -> str | None:
        if len(value) == 10:
            return on_day(value)
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise bad(value) from exc
        if parsed.tzinfo is None:
            raise ValueError(f"{value!r} has no UTC offset")
        if _RFC3339.fullmatch(value):
            return value
        try:
            return utc_text(parsed)
        except OverflowError as exc:
            raise bad(value) from exc

    return parse


def instant_of(value: str) -> datetime:
    """The aware instant an :func:`instant_in` answer names."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


SEGMENTS = ("strategic", "key", "enterprise", "mid_market", "small")
STAGES = ("prospect", "onboarding", "active", "churned")
MANAGER_ROLES = (
    "associate_account_manager",
    "account_manager",
    "senior_account_manager",
    "team_lead",
    "sales_manager",
)
CHANNELS = (
    "email",
    "phone",
    "video_call",
    "meeting",
    "presentation",
    "screen_share",
    "chat",
    "event",
    "other",
)
CATEGORIES = ("product", "service", "billing", "delivery", "communication", "other")
SEVERITIES = ("low", "medium", "high", "critical")
SALE_KINDS = ("new", "renewal", "upsell", "cross_sell", "refund")


def formats(time_zone_name: str) -> dict[str, list[Column]]:
    """Columns of every importable resource (``external_ref`` first, always required)."""
    at = instant_in(time_zone_name)
    currency = code_in(_currencies(), "an ISO 4217 currency code")
    country = code_in(_countries(), "an ISO 3166-1 alpha-2 country code")
    time_zone = code_in(_zones(), "an IANA time zone", upper=False)
    ref = Column("external_ref", "text", text(100), required=True)
    return {
        "managers": [
            ref,
            Column("email", "text", email, True),
            Column("full_name", "text", text(200), True),
            Column("role", "text", one_of(*MANAGER_ROLES)),
            Column("reports_to_ref", "text", text(100)),
            Column("time_zone", "text", time_zone),
            Column("region", "text", text(100)),
            Column("active", "boolean", boolean),
        ],
        "clients": [
            ref,
            Column("name", "text", text(200), True),
            Column("legal_name", "text", text(200)),
            Column("industry", "text", text(100)),
            Column("segment", "text", one_of(*SEGMENTS), True),
            Column("lifecycle_stage", "text", one_of(*STAGES)),
            Column("parent_ref", "text", text(100)),
            Column("country", "text", country, True),
            Column("currency", "text", currency, True),
            Column("time_zone", "text", time_zone),
            Column("renewal_date", "date", day),
            Column("annual_value", "numeric", decimal),
            Column("annual_value_currency", "text", currency),
        ],
        "assignments": [
            ref,
            Column("client_ref", "text", text(100), True),
            Column("manager_ref", "text", text(100), True),
            Column("role", "text", one_of("primary", "secondary", "cover"), True),
            Column("starts_at", "timestamptz", at, True),
            Column("ends_at", "timestamptz", at),
            Column("reason", "text", text(500)),
        ],
        "interactions": [
            ref,
            Column("client_ref", "text", text(100), True),
            Column("manager_ref", "text", text(100), True),
            Column("channel", "text", one_of(*CHANNELS), True),
            Column("direction", "text", one_of("inbound", "outbound"), True),
            Column("occurred_at", "timestamptz", at, True),
            Column("duration_minutes", "integer", integer),
            Column("subject", "text", text(300), True),
            Column("notes", "text", text(20_000)),
            Column("sentiment", "text", one_of("positive", "neutral", "negative")),
        ],
        "complaints": [
            ref,
            Column("client_ref", "text", text(100), True),
            Column("title", "text", text(300), True),
            Column("description", "text", text(20_000)),
            Column("category", "text", one_of(*CATEGORIES), True),
            Column("severity", "text", one_of(*SEVERITIES), True),
            Column("channel", "text", one_of(*CHANNELS)),
            Column("received_at", "timestamptz", at, True),
            Column("status", "text", one_of("open", "closed")),
            Column("responded_at", "timestamptz", at),
            Column("resolution", "text", text(20_000)),
        ],
        "sales": [
            ref,
            Column("client_ref", "text", text(100), True),
            Column("amount", "numeric", decimal, True),
            Column("currency", "text", currency, True),
            Column("closed_at", "timestamptz", at, True),
            Column(
                "kind", "text", one_of("new", "renewal", "upsell", "cross_sell", "refund"), True
            ),
            Column("product", "text", text(200)),
            Column("credited_manager_ref", "text", text(100)),
        ],
        "quotas": [
            ref,
            Column("manager_ref", "text", text(100), True),
            Column("metric", "text", one_of("sales_amount", "interaction_count"), True),
            Column("period", "text", text(20), True),
            Column("target_amount", "numeric", decimal),
            Column("target_currency", "text", currency),
            Column("target_count", "integer", integer),
            Column("channel", "text", one_of(*CHANNELS)),
        ],
    }


def fits_currency(amount: str, code: str) -> bool:
    """Whether a :func:`decimal` answer has no more decimals than the currency's minor
    unit (trailing zeros do not count)."""
    allowed = currency_decimals(code)
    dot = amount.find(".")
    return dot < 0 or len(amount) - dot - 1 <= allowed or decimals_of(amount) <= allowed
