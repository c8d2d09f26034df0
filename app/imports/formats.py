"""The CSV formats the importer reads, one per resource (documented in README).

Each column has a parser that turns the cell into a typed value or raises ValueError
with a reason a person can act on. References to other records are external refs
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
from typing import Any
from zoneinfo import ZoneInfo

from app.core.money import _countries, _currencies, currency_decimals
from app.core.schemas import _zones

Parser = Callable[[str], Any]


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str
    parse: Parser
    required: bool = False


def text(max_length: int) -> Parser:
    def parse(value: str) -> str:
        if len(value) > max_length:
            raise ValueError(f"longer than {max_length} characters")
        return value

    return parse


def one_of(*choices: str) -> Parser:
    allowed = frozenset(choices)

    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return parse


def decimal(value: str) -> Decimal:
    try:
        number = Decimal(
            value.replace(",", "") if re.fullmatch(r"-?[\d,]+(\.\d+)?", value) else value
        )
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not a decimal number") from exc
    if not number.is_finite() or abs(number) >= Decimal("1e15"):
        raise ValueError(f"{value!r} is out of range")
    return number


def integer(value: str) -> int:
    if not re.fullmatch(r"-?\d{1,9}", value):
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "yes", "1", "y"):
        return True
    if lowered in ("false", "no", "0", "n"):
        return False
    raise ValueError(f"{value!r} is not true/false")


def currency(value: str) -> str:
    code = value.upper()
    if code not in _currencies():
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    return code


def country(value: str) -> str:
    code = value.upper()
    if code not in _countries():
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def time_zone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"{value!r} is not an IANA time zone")
    return value


def email(value: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) or len(value) > 320:
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def instant_in(zone: str) -> Parser:
    tz = ZoneInfo(zone)

    def parse(value: str) -> datetime:
        try:
            if len(value) == 10:
                return datetime.combine(date.fromisoformat(value), datetime.min.time(), tz)
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a date or an RFC 3339 instant") from exc
        if parsed.tzinfo is None:
            raise ValueError(f"{value!r} has no UTC offset")
        return parsed.astimezone(UTC)

    return parse


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


def fits_currency(amount: Decimal, code: str) -> bool:
    """Whether ``amount`` has no more decimals than the currency's minor unit."""
    return amount == amount.quantize(Decimal(1).scaleb(-currency_decimals(code)))
