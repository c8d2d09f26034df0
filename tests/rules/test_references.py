"""The references of what a rule run writes in bulk (``flags.client_id`` /
``raised_by_run_id`` / ``rule_key``, ``client_health_history.client_id`` / ``run_id``)
are held by per-statement triggers instead of row-level foreign keys (migration
0012_rule_refs): an unknown parent is refused with the old constraint's name, a parent
that is referred to cannot be deleted or re-keyed (a client: 409 over HTTP), the
references of a written row cannot change, and a delete waits while a run writes.

Most tests run in the ``client`` fixture's rolled-back transaction; the lock test uses
``live_client`` (real commits, truncated afterwards).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.rules.engine import MARK_WRITES
from tests.assertions import assert_problem
from tests.factories import create_client, run_rules


def _constraint(exc: IntegrityError) -> str | None:
    name = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
    return name if isinstance(name, str) else None


async def refused(conn: AsyncConnection, sql: str, **binds: object) -> str | None:
    """Run ``sql`` in a savepoint that must fail with a foreign-key violation; answer the
    constraint it names."""
    savepoint = await conn.begin_nested()
    with pytest.raises(IntegrityError) as caught:
        await conn.execute(text(sql), binds)
    await savepoint.rollback()
    cause = getattr(caught.value.orig, "__cause__", None)
    assert getattr(cause, "sqlstate", None) == "23503", caught.value
    return _constraint(caught.value)


async def flagged_client(http: AsyncClient) -> tuple[dict[str, object], dict[str, object]]:
    """An active client with no manager, and the run that raised ``unassigned`` for it."""
    acme = await create_client(http, lifecycle_stage="active")
    run = await run_rules(http, datetime.now(UTC).isoformat())
    assert run["per_rule"]["unassigned"]["raised"] == 1, run
    return acme, run


FLAG = (
    "INSERT INTO flags (id, rule_key, rule_version, subject_type, subject_id, client_id,"
    " severity, status, evidence, raised_at, raised_by_run_id, version)"
    " SELECT gen_random_uuid(), :rule, 1, 'client', c, c, 'low', 'open', '{}', now(), :run, 1"
    " FROM unnest(CAST(:clients AS uuid[])) c"
)
POINT = (
    "INSERT INTO client_health_history (client_id, run_id, at, score)"
    " SELECT c, :run, now(), 50 FROM unnest(CAST(:clients AS uuid[])) c"
)


class TestWrittenRowsNeedTheirParents:
    async def test_unknown_client_run_or_rule_is_refused_for_the_whole_statement(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        acme, run = await flagged_client(client)
        known, unknown = str(acme["id"]), str(uuid.uuid4())
        flags_before = (await connection.execute(text("SELECT count(*) FROM flags"))).scalar()

        # One row of two names no client: the statement writes nothing.
        assert (
            await refused(
                connection,
                FLAG,
                rule="overdue_follow_up",
                run=run["id"],
                clients=[known, unknown],
            )
            == "fk_flags_client_id_clients"
        )
        assert (
            await refused(
                connection, FLAG, rule="overdue_follow_up", run=str(uuid.uuid4()), clients=[known]
            )
            == "fk_flags_raised_by_run_id_rule_runs"
        )
        assert (
            await refused(connection, FLAG, rule="no_such_rule", run=run["id"], clients=[known])
            == "fk_flags_rule_key_rules"
        )
        assert (
            await refused(connection, POINT, run=run["id"], clients=[unknown])
            == "fk_client_health_history_client_id_clients"
        )
        assert (
            await refused(connection, POINT, run=str(uuid.uuid4()), clients=[known])
            == "fk_client_health_history_run_id_rule_runs"
        )
        after = (await connection.execute(text("SELECT count(*) FROM flags"))).scalar()
        assert after == flags_before

        # The same statements with known parents go in.
        await connection.execute(
            text(FLAG), {"rule": "overdue_follow_up", "run": run["id"], "clients": [known]}
        )
        assert (await connection.execute(text("SELECT count(*) FROM flags"))).scalar() == (
            flags_before or 0
        ) + 1

    async def test_references_of_a_written_row_cannot_change(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        acme, run = await flagged_client(client)
        other = await create_client(client)
        for sql in (
            "UPDATE flags SET client_id = :other WHERE client_id = :acme",
            "UPDATE client_health_history SET client_id = :other WHERE client_id = :acme",
        ):
            await refused(connection, sql, other=other["id"], acme=acme["id"])
        # Other columns still change (a flag's lifecycle).
        moved = await connection.execute(
            text("UPDATE flags SET note = 'seen' WHERE client_id = :acme"), {"acme": acme["id"]}
        )
        assert moved.rowcount == 1


class TestReferredParentsStay:
    async def test_a_client_with_a_flag_cannot_be_deleted(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        acme, _ = await flagged_client(client)
        # A client without history can still go.
        fresh = await create_client(client, lifecycle_stage="prospect")
        assert (await client.delete(f"/v1/clients/{fresh['id']}")).status_code == 204

        response = await client.delete(f"/v1/clients/{acme['id']}")
        assert_problem(response, 409)
        assert "archive" in response.json()["detail"]
        assert (await client.get(f"/v1/clients/{acme['id']}")).status_code == 200

    async def test_a_referred_client_run_or_rule_cannot_be_deleted_or_rekeyed(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        acme, run = await flagged_client(client)
        cases = [
            ("DELETE FROM clients WHERE id = :id", acme["id"], "fk_flags_client_id_clients"),
            (
                "UPDATE clients SET id = gen_random_uuid() WHERE id = :id",
                acme["id"],
                "fk_flags_client_id_clients",
            ),
            (
                "DELETE FROM rule_runs WHERE id = :id",
                run["id"],
                "fk_flags_raised_by_run_id_rule_runs",
            ),
            ("DELETE FROM rules WHERE key = :id", "unassigned", "fk_flags_rule_key_rules"),
        ]
        for sql, key, constraint in cases:
            assert await refused(connection, sql, id=key) == constraint, sql
        # With the flags gone, the health point still holds the client and the run.
        await connection.execute(
            text("DELETE FROM flags WHERE client_id = :id"), {"id": acme["id"]}
        )
        for sql, key, constraint in cases[:3]:
            expected = constraint.replace("flags", "client_health_history").replace(
                "raised_by_run_id", "run_id"
            )
            assert await refused(connection, sql, id=key) == expected, sql


class TestDeletesWaitForARunsWrites:
    async def test_a_client_delete_waits_while_a_run_holds_the_apply_lock(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        lonely = await create_client(live_client, lifecycle_stage="prospect")
        async with engine.connect() as run_conn, engine.connect() as other:
            await run_conn.execute(text(MARK_WRITES))
            await other.execute(text("SET statement_timeout = 500"))
            with pytest.raises(DBAPIError, match="statement timeout"):
                await other.execute(
                    text("DELETE FROM clients WHERE id = :id"), {"id": lonely["id"]}
                )
            await other.rollback()

            # Released (the run commits): the delete goes ahead while the run is gone.
            pending = asyncio.ensure_future(_delete(live_client, str(lonely["id"])))
            await asyncio.sleep(0.3)
            assert not pending.done()
            await run_conn.rollback()
            assert await asyncio.wait_for(pending, 10) == 204

    async def test_a_waiting_delete_holds_no_row_the_run_needs(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        """The delete waits before it locks the client's row: the run can still take the
        row lock a foreign key takes (a flag event for that client), so no deadlock."""
        lonely = await create_client(live_client, lifecycle_stage="prospect")
        async with engine.connect() as run_conn, engine.connect() as other:
            await run_conn.execute(text(MARK_WRITES))
            waiting = asyncio.ensure_future(
                other.execute(text("DELETE FROM clients WHERE id = :id"), {"id": lonely["id"]})
            )
            await asyncio.sleep(0.3)
            assert not waiting.done()
            await run_conn.execute(text("SET LOCAL lock_timeout = 1000"))
            locked = await run_conn.execute(
                text("SELECT id FROM clients WHERE id = :id FOR KEY SHARE"),
                {"id": lonely["id"]},
            )
            assert str(locked.scalar_one()) == lonely["id"]
            await run_conn.rollback()
            assert (await asyncio.wait_for(waiting, 10)).rowcount == 1
            await other.rollback()


async def _delete(http: AsyncClient, client_id: str) -> int:
    response = await http.delete(f"/v1/clients/{client_id}")
    return response.status_code
