"""The database itself enforces the assignment invariants: rows written with plain SQL,
bypassing the API and its pre-checks, are refused by the exclusion constraints, the check
constraints and the ``assignments_parties_usable`` trigger."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.factories import insert_clients

JAN = datetime(2026, 1, 1, tzinfo=UTC)


def jan(day: int) -> datetime:
    return JAN + timedelta(days=day - 1)


async def insert_manager(conn: AsyncConnection, *, active: bool = True) -> uuid.UUID:
    result = await conn.execute(
        text(
            "INSERT INTO managers (id, email, full_name, role, active, version)"
            " VALUES (gen_random_uuid(), :email, 'SQL Manager', 'account_manager', :active, 1)"
            " RETURNING id"
        ),
        {"email": f"sql-{uuid.uuid4().hex[:10]}@example.com", "active": active},
    )
    return uuid.UUID(str(result.scalar_one()))


async def insert_assignment(
    conn: AsyncConnection,
    client_id: uuid.UUID,
    manager_id: uuid.UUID,
    role: str,
    starts_at: datetime | str,
    ends_at: datetime | str | None = None,
) -> uuid.UUID:
    """Insert one assignment with SQL (timestamps as Python instants or timestamptz text)."""
    result = await conn.execute(
        text(
            "INSERT INTO assignments (id, client_id, manager_id, role, starts_at, ends_at,"
            " version) VALUES (gen_random_uuid(), :client_id, :manager_id, :role,"
            " CAST(CAST(:starts_at AS text) AS timestamptz),"
            " CAST(CAST(:ends_at AS text) AS timestamptz), 1) RETURNING id"
        ),
        {
            "client_id": client_id,
            "manager_id": manager_id,
            "role": role,
            "starts_at": starts_at if isinstance(starts_at, str) else starts_at.isoformat(),
            "ends_at": ends_at.isoformat() if isinstance(ends_at, datetime) else ends_at,
        },
    )
    return uuid.UUID(str(result.scalar_one()))


async def refused(
    conn: AsyncConnection,
    client_id: uuid.UUID,
    manager_id: uuid.UUID,
    role: str,
    starts_at: datetime | str,
    ends_at: datetime | str | None = None,
) -> asyncpg.PostgresError:
    """Insert in a savepoint, expect an IntegrityError; return the asyncpg error."""
    with pytest.raises(IntegrityError) as caught:
        async with conn.begin_nested():
            await insert_assignment(conn, client_id, manager_id, role, starts_at, ends_at)
    cause = caught.value.orig.__cause__ if caught.value.orig is not None else None
    assert isinstance(cause, asyncpg.PostgresError), repr(caught.value)
    return cause


async def count_rows(conn: AsyncConnection, client_id: uuid.UUID) -> int:
    result = await conn.execute(
        text("SELECT count(*) FROM assignments WHERE client_id = :c"), {"c": client_id}
    )
    return int(result.scalar_one())


@pytest.fixture
async def parties(connection: AsyncConnection) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A client and two active managers, inserted with SQL."""
    (client_id,) = await insert_clients(connection, 1, prefix="Constraint")
    return client_id, await insert_manager(connection), await insert_manager(connection)


Parties = tuple[uuid.UUID, uuid.UUID, uuid.UUID]

# (existing start, existing end, new start, new end) in days of January 2026; None = open.
OVERLAPS = {
    "same_start": (10, 20, 10, 15),
    "contained": (10, 20, 12, 18),
    "containing": (10, 20, 5, 25),
    "overlaps_start": (10, 20, 5, 15),
    "overlaps_end": (10, 20, 15, 25),
    "open_existing_vs_bounded": (10, None, 15, 20),
    "bounded_existing_vs_open": (10, 20, 5, None),
    "both_open": (10, None, 12, None),
}


def days(value: int | None) -> datetime | None:
    return None if value is None else jan(value)


class TestExclusionConstraints:
    async def test_two_overlapping_primaries_raise_exclusion_violation(
        self, connection: AsyncConnection, parties: Parties
    ) -> None:
        client_id, anna, bela = parties
        await insert_assignment(connection, client_id, anna, "primary", jan(1), jan(20))
        with pytest.raises(IntegrityError) as caught:
            async with connection.begin_nested():
                await insert_assignment(connection, client_id, bela, "primary", jan(10))
        assert "ex_assignments_one_primary" in str(caught.value)
        assert caught.value.orig is not None
        cause = caught.value.orig.__cause__
        assert isinstance(cause, asyncpg.exceptions.ExclusionViolationError)
        assert cause.constraint_name == "ex_assignments_one_primary"
        assert cause.sqlstate == "23P01"
        assert await count_rows(connection, client_id) == 1

    @pytest.mark.parametrize(
        ("role", "constraint"),
        [("primary", "ex_assignments_one_primary"), ("cover", "ex_assignments_one_cover")],
    )
    @pytest.mark.parametrize("shape", OVERLAPS.keys())
    async def test_every_overlap_shape_is_refused(
        self,
        connection: AsyncConnection,
        parties: Parties,
        role: str,
        constraint: str,
        shape: str,
    ) -> None:
        client_id, anna, bela = parties
        old_start, old_end, new_start, new_end = OVERLAPS[shape]
        await insert_assignment(connection, client_id, anna, role, jan(old_start), days(old_end))
        error = await refused(connection, client_id, bela, role, jan(new_start), days(new_end))
        assert isinstance(error, asyncpg.exceptions.ExclusionViolationError)
        assert error.constraint_name == constraint

    @pytest.mark.parametrize("role", ["primary", "cover"])
    async def test_touching_ranges_are_accepted(
        self, connection: AsyncConnection, parties: Parties, role: str
    ) -> None:
        client_id, anna, bela = parties
        await insert_assignment(connection, client_id, anna, role, jan(10), jan(20))
        await insert_assignment(connection, client_id, bela, role, jan(20))
        await insert_assignment(connection, client_id, bela, role, jan(1), jan(10))
        assert await count_rows(connection, client_id) == 3

    async def test_dst_boundary_in_local_time_touches(
        self, connection: AsyncConnection, parties: Parties
    ) -> None:
        client_id, anna, bela = parties
        await insert_assignment(
            connection, client_id, anna, "primary", jan(1), "2026-03-29T01:30:00Z"
        )
        await insert_assignment(connection, client_id, bela, "primary", "2026-03-29T03:30:00+02:00")
        cili = await insert_manager(connection)
        error = await refused(
            connection, client_id, cili, "primary", "2026-03-29T03:29:59.999999+02:00"
        )
        assert error.constraint_name == "ex_assignments_one_primary"

    async def test_primary_manager_cannot_cover_the_same_client(
        self, connection: AsyncConnection, parties: Parties
    ) -> None:
        client_id, anna, bela = parties
        await insert_assignment(connection, client_id, anna, "primary", jan(1))
        error = await refused(connection, client_id, anna, "cover", jan(5), jan(9))
        assert isinstance(error, asyncpg.exceptions.ExclusionViolationError)
        assert error.constraint_name == "ex_assignments_cover_not_primary"
        await insert_assignment(connection, client_id, bela, "cover", jan(5), jan(9))

    async def test_secondaries_and_other_clients_never_conflict(
        self, connection: AsyncConnection, parties: Parties
    ) -> None:
        client_id, anna, bela = parties
        (other,) = await insert_clients(connection, 1, prefix="Other")
        await insert_assignment(connection, client_id, anna, "primary", jan(1))
        await insert_assignment(connection, other, bela, "primary", jan(1))
        await insert_assignment(connection, client_id, anna, "secondary", jan(1))
        await insert_assignment(connection, client_id, bela, "secondary", jan(1))
        await insert_assignment(connection, client_id, bela, "secondary", jan(2), jan(3))
        assert await count_rows(connection, client_id) == 4

    async def test_period_is_the_half_open_range(
        self, connection: AsyncConnection, parties: Parties
    ) -> None:
        client_id, anna, _ = parties
        bounded = await insert_assignment(connection, client_id, anna, "primary", jan(1), jan(5))
        result = await connection.execute(
            text(
                "SELECT period = tstzrange(:a, :b, '[)'), lower_inc(period),"
                " upper_inc(period), period @> CAST(:b AS timestamptz)"
                " FROM assignments WHERE id = :id"
            ),
            {"id": bounded, "a": jan(1), "b": jan(5)},
        )
        assert tuple(result.one()) == (True, True, False, False)

    async def test_ending_an_assignment_into_another_is_refused_on_update(
        self, connection: AsyncConnection, parties: Parties
    ) -> None:
        client_id, anna, bela = parties
        first = await insert_assignment(connection, client_id, anna, "primary", jan(1), jan(10))
        await insert_assignment(connection, client_id, bela, "primary", jan(10))
        with pytest.raises(IntegrityError, match="ex_assignments_one_primary"):
            async with connection.begin_nested():
                await connection.execute(
                    text("UPDATE assignments SET ends_at = NULL WHERE id = :id"), {"id": first}
                )


class TestCheckConstraints:
    async def test_ends_after_start(self, connection: AsyncConnection, parties: Parties) -> None:
        client_id, anna, _ = parties
        error = await refused(connection, client_id, anna, "primary", jan(2), jan(2))
        assert isinstance(error, asyncpg.exceptions.CheckViolationError)
        assert error.constraint_name == "ck_assignments_ends_after_start"

    async def test_an_end_before_the_start_is_refused_by_the_period_column(
        self, connection: AsyncConnection, parties: Parties
    ) -> None:
        """The generated ``period`` is computed before CHECKs run, so a reversed range
        fails as a data exception (22000), not as ck_assignments_ends_after_start."""
        client_id, anna, _ = parties
        with pytest.raises(DBAPIError) as caught:
            async with connection.begin_nested():
                await insert_assignment(connection, client_id, anna, "primary", jan(2), jan(1))
        assert caught.value.orig is not None
        cause = caught.value.orig.__cause__
        assert isinstance(cause, asyncpg.PostgresError)
        assert cause.sqlstate == "22000"
        assert await count_rows(connection, client_id) == 0

    async def test_role_is_one_of_three(
        self, connection: AsyncConnection, parties: Parties
    ) -> None:
        client_id, anna, _ = parties
        error = await refused(connection, client_id, anna, "owner", jan(1))
        assert error.constraint_name == "ck_assignments_role"


class TestPartiesUsableTrigger:
    async def test_refuses_an_inactive_manager(
        self, connection: AsyncConnection, parties: Parties
    ) -> None:
        client_id, _, _ = parties
        gone = await insert_manager(connection, active=False)
        error = await refused(connection, client_id, gone, "primary", jan(1))
        assert isinstance(error, asyncpg.exceptions.CheckViolationError)
        assert error.constraint_name == "ck_assignments_manager_active"
        assert "is not active" in str(error)
        assert await count_rows(connection, client_id) == 0

    async def test_refuses_a_manager_deactivated_later(
        self, connection: AsyncConnection, parties: Parties
    ) -> None:
        client_id, anna, _ = parties
        await insert_assignment(connection, client_id, anna, "secondary", jan(1), jan(2))
        await connection.execute(
            text("UPDATE managers SET active = false WHERE id = :id"), {"id": anna}
        )
        error = await refused(connection, client_id, anna, "secondary", jan(3))
        assert error.constraint_name == "ck_assignments_manager_active"

    async def test_refuses_an_archived_client(
        self, connection: AsyncConnection, parties: Parties
    ) -> None:
        client_id, anna, _ = parties
        await connection.execute(
            text("UPDATE clients SET archived_at = now() WHERE id = :id"), {"id": client_id}
        )
        error = await refused(connection, client_id, anna, "primary", jan(1))
        assert isinstance(error, asyncpg.exceptions.CheckViolationError)
        assert error.constraint_name == "ck_assignments_client_not_archived"
        assert await count_rows(connection, client_id) == 0
