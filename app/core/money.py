"""Money and ISO codes.

Money travels as ``{"amount": "1234.50", "currency": "EUR"}``: the amount is a decimal
string (never a JSON number) whose value fits the currency's minor unit (ISO 4217
"List One" exponents: JPY 0, EUR 2, HUF 2, KWD 3) and is always rendered with exactly
that many decimals. ``"100.00"`` is accepted for JPY (the value is whole); ``"1.5"`` is not.
Stored as ``NUMERIC(19,4)`` plus a ``CHAR(3)`` ISO 4217 code.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Self

import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

MAX_AMOUNT_DIGITS = 15  # NUMERIC(19,4): 15 integer digits


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    # Active ISO 4217 codes, less the funds, metals and testing codes nobody invoices in.
    excluded = {
        "XAU",
        "XAG",
        "XPT",
        "XPD",
        "XTS",
        "XXX",
        "XBA",
        "XBB",
        "XBC",
        "XBD",
        "XSU",
        "XUA",
        "XDR",
        "BOV",
        "CHE",
        "CHW",
        "CLF",
        "COU",
        "MXV",
        "USN",
        "UYI",
        "UYW",
    }
    return frozenset(c.alpha_3 for c in pycountry.currencies) - excluded


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


# ISO 4217 List One exponents other than 2 (source: ISO 4217 amendment 179, 2025).
_EXPONENTS = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
}


def minor_units_sql(currency: str) -> str:
    """SQL of the minor-unit digits of ``currency`` (an SQL expression holding an ISO
    4217 code): the same figures as :func:`currency_decimals`, 2 for a NULL code."""
    cases = " ".join(f"WHEN '{code}' THEN {digits}" for code, digits in sorted(_EXPONENTS.items()))
    return f"CASE {currency} {cases} ELSE 2 END"


def currency_decimals(code: str) -> int:
    """Minor-unit digits of an ISO 4217 currency (JPY 0, EUR 2, KWD 3)."""
    return _EXPONENTS.get(code, 2)


def _check_currency(value: str) -> str:
    if value not in _currencies():
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    return value


def _check_country(value: str) -> str:
    if value not in _countries():
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return value


CurrencyCode = Annotated[
    str,
    Field(pattern=r"^[A-Z]{3}$", examples=["EUR"], description="ISO 4217 code"),
    AfterValidator(_check_currency),
]
CountryCode = Annotated[
    str,
    Field(pattern=r"^[A-Z]{2}$", examples=["HU"], description="ISO 3166-1 alpha-2 code"),
    AfterValidator(_check_country),
]


def quantize(amount: Decimal, currency: str) -> Decimal:
    """``amount`` with exactly the currency's minor-unit digits (no rounding needed)."""
    return amount.quantize(Decimal(1).scaleb(-currency_decimals(currency)))


class Money(BaseModel):
    """An amount of one currency; ``amount`` is a decimal string, e.g. ``"1234.50"``."""

    model_config = ConfigDict(extra="forbid")

    amount: str = Field(
        pattern=r"^-?\d{1,15}(\.\d{1,4})?$",
        examples=["1234.50"],
        description="Decimal string with at most the currency's minor-unit digits.",
    )
    currency: CurrencyCode

    @model_validator(mode="after")
    def _decimals_fit_currency(self) -> Self:
        try:
            value = Decimal(self.amount)
        except InvalidOperation as exc:  # pragma: no cover - the pattern prevents it
            raise ValueError("amount is not a decimal number") from exc
        digits = currency_decimals(self.currency)
        if quantize(value, self.currency) != value:
            raise ValueError(f"{self.currency} amounts have at most {digits} decimal places")
        self.amount = format(quantize(value, self.currency), "f")
        return self

    @property
    def value(self) -> Decimal:
        return Decimal(self.amount)

    @classmethod
    def of(cls, amount: Decimal, currency: str) -> Money:
        """Render a stored amount (already valid) without re-validating."""
        return cls.model_construct(
            amount=format(quantize(amount, currency), "f"), currency=currency
        )
