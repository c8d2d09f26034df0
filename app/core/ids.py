"""Ids made in SQL for rows written in bulk."""

from __future__ import annotations


def ordered_uuid_sql(counter: str, salt: str) -> str:
    """SQL for a UUID (version 7 layout, RFC 9562 §5.7) whose order follows ``counter``
    (an SQL int < 2**30) within a statement: 48 bits of the statement's Unix time in
    milliseconds, the version nibble 7, 12 bits of ``salt`` (an SQL int 0..4095, one per
    statement), the variant bits, 30 bits of counter and 32 random bits.

    Rows written in bulk with such ids land at the right edge of their primary key and
    of every index led by the id (or by its text), instead of on random pages."""
    return (
        "CAST(lpad(to_hex((CAST(floor(extract(epoch FROM statement_timestamp()) * 1000)"
        f" AS bigint) << 16) | 28672 | CAST({salt} AS bigint)), 16, '0')"
        " || lpad(to_hex(CAST(-9223372036854775808 AS bigint)"
        f" | (CAST({counter} AS bigint) << 32) | CAST(random() * 4294967295 AS bigint)),"
        " 16, '0') AS uuid)"
    )
