"""Adversarial tests of migration 0012_rule_refs (references of flags and health points
held by per-statement triggers instead of row-level foreign keys), of the raise being
the flag's own record (history and timeline synthesize it) and of the migrations'
round trip with data.

Every test states the invariant it holds; where it found a bug (since fixed), its
docstring says what went wrong without the fix. ``client`` tests run in the
rolled-back test transaction; ``live_client`` tests commit for real on separate
connections (truncated afterwards).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from alembic import command
from httpx import AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.core.health import alembic_config
from app.rules.engine import MARK_WRITES
from tests.assertions import assert_problem
from tests.conftest import in_thread, plain_url
from tests.factories import (
    create_assignment,
    create_client,
    create_interaction,
    create_manager,
    create_quota,
    list_flags,
    move_flag,
    run_rules,
)
from tests.rules.test_engine import iso, past

S = timedelta(seconds=1)
H = timedelta(hours=1)
D = timedelta(days=1)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# Every reference the triggers hold, as (child, column, parent, key).
REFERENCES = (
    ("flags", "client_id", "clients", "id"),
    ("flags", "raised_by_run_id", "rule_runs", "id"),
    ("flags", "rule_key", "rules", "key"),
    ("client_health_history", "client_id", "clients", "id"),
    ("client_health_history", "run_id", "rule_runs", "id"),
)


async def dangling(conn: AsyncConnection) -> dict[str, int]:
    """Rows of flags / client_health_history whose parent is missing, per reference
    (only the non-zero ones)."""
    found: dict[str, int] = {}
    for child, column, parent, key in REFERENCES:
        n = (
            await conn.execute(
                text(
                    f"SELECT count(*) FROM {child} c WHERE c.{column} IS NOT NULL"
                    f" AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{key} = c.{column})"
                )
            )
        ).scalar_one()
        if n:
            found[f"{child}.{column}"] = int(n)
    return found


async def dangling_now(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return await dangling(conn)


async def lock_waiters(engine: AsyncEngine) -> int:
    """Backends of this database waiting for a heavyweight lock (advisory, row, tuple,
    transaction id)."""
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                        " current_database() AND wait_event_type = 'Lock'"
                    )
                )
            ).scalar_one()
        )


async def until_waiting(engine: AsyncEngine, n: int, *pending: asyncio.Future[Any]) -> None:
    """Wait until ``n`` backends wait for a lock (fail fast if a pending request ends)."""
    for _ in range(200):
        if await lock_waiters(engine) >= n:
            return
        for p in pending:
            if p.done():
                raise AssertionError(f"finished before waiting: {p.result()!r}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {n} backends ever waited for a lock")


async def deadlocks(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        )
        return int(found.scalar_one())


def text_of(response: Response) -> str:
    return f"{response.status_code} {response.text}"


# ---------------------------------------------------------------------------------------
# A run and a client delete at the same time (real commits)
# ---------------------------------------------------------------------------------------


class TestRunAgainstClientDeletes:
    async def test_a_delete_that_waited_for_a_run_is_refused_once_the_run_flagged_the_client(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        """POST /v1/rule-runs writes an ``unassigned`` flag for the client while a
        DELETE /v1/clients/{id} waits for the run's writes: after the run commits, the
        delete must see the flag and answer 409 (problem+json), never 204 with a
        dangling flag, and neither request deadlocks."""
        victim = await create_client(live_client, lifecycle_stage="active")  # unassigned
        async with engine.connect() as holder:
            # Stand in for the writes of a previous run: the next run queues for the lock
            # after its evaluation, the delete queues behind it.
            await holder.execute(text(MARK_WRITES))
            run = asyncio.ensure_future(live_client.post("/v1/rule-runs", json={}))
            await until_waiting(engine, 1, run)
            delete = asyncio.ensure_future(live_client.delete(f"/v1/clients/{victim['id']}"))
            await until_waiting(engine, 2, run, delete)
            await holder.rollback()
        ran, deleted = await asyncio.wait_for(asyncio.gather(run, delete), 30)
        assert ran.status_code == 201, text_of(ran)
        assert ran.json()["per_rule"]["unassigned"]["raised"] == 1, ran.json()
        body = assert_problem(deleted, 409)
        assert "archive" in body["detail"]
        assert (await live_client.get(f"/v1/clients/{victim['id']}")).status_code == 200
        assert await dangling_now(engine) == {}

    async def test_a_client_deleted_while_a_run_evaluates_does_not_fail_the_run(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        """A client without history is deleted (DELETE /v1/clients/{id}: 204) while a run
        evaluates; the run matched it (``unassigned``) before the delete committed. The
        run marks its writes (MARK_WRITES) only after matching and staging, so nothing stops the
        delete from committing in between; before the fix (the run drops the raises of
        subjects gone by then) the per-statement check refused the whole run (23503 →
        POST /v1/rule-runs answers 422 "The request refers to a record
        that does not exist"): one deleted client fails every flag of the run (the
        scheduled run fails each time it races a delete). Expected: the run succeeds and
        simply does not flag the deleted client."""
        victim = await create_client(live_client, lifecycle_stage="active")  # unassigned
        bystander = await create_client(live_client, lifecycle_stage="active")
        async with engine.connect() as deleter:
            # The app's DELETE of a client without history, not yet committed: the
            # client is still visible to the run's evaluation.
            gone = await deleter.execute(
                text("DELETE FROM clients WHERE id = :id"), {"id": victim["id"]}
            )
            assert gone.rowcount == 1
            run = asyncio.ensure_future(live_client.post("/v1/rule-runs", json={}))
            await until_waiting(engine, 1, run)  # evaluated; waits to mark its writes
            await deleter.commit()
        ran = await asyncio.wait_for(run, 30)
        assert await dangling_now(engine) == {}
        assert ran.status_code == 201, text_of(ran)
        flagged = {f["client_id"] for f in await list_flags(live_client, rule="unassigned")}
        assert flagged == {bystander["id"]}

    async def test_runs_and_deletes_at_once_leave_no_dangling_reference(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        """Runs and client deletes through the API at the same time: every answer is a
        201/409/204 (or the run's 422 of the finding above), never a 500, and no flag or
        health point is left without its client or run."""
        for _ in range(2):
            clients = [await create_client(live_client, lifecycle_stage="active") for _ in range(4)]
            responses = await asyncio.gather(
                live_client.post("/v1/rule-runs", json={}),
                *(live_client.delete(f"/v1/clients/{c['id']}") for c in clients),
                live_client.post("/v1/rule-runs", json={"as_of": iso(past(0))}),
            )
            for r in responses:
                assert r.status_code in (201, 204, 409, 422), text_of(r)
                if r.status_code >= 400:
                    assert_problem(r, r.status_code)
            assert await dangling_now(engine) == {}


class TestSnapshotIsolation:
    async def test_a_repeatable_read_delete_cannot_orphan_a_flag(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        """The parent-side check (``refuse_if_referenced``) reads the flags with the
        deleting transaction's snapshot. Before the fix (``rule_write_epoch`` read FOR
        SHARE, which fails such a snapshot with 40001), under REPEATABLE READ (or
        SERIALIZABLE, e.g. a
        server or role with ``default_transaction_isolation`` raised, or an operator's
        session) that snapshot predates a run that committed a flag for the client, so
        the delete goes through and the flag is left pointing at no client. A foreign key
        checks with a fresh (crosscheck) snapshot and refuses with a serialization
        failure. Expected: the delete fails (23503 or 40001) and nothing dangles."""
        victim = await create_client(live_client, lifecycle_stage="active")  # unassigned
        async with engine.connect() as deleter:
            await deleter.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            # The app's delete reads the client first (and so takes its snapshot).
            seen = await deleter.execute(
                text("SELECT version FROM clients WHERE id = :id"), {"id": victim["id"]}
            )
            assert seen.scalar_one() == 1
            run = await run_rules(live_client)
            assert run["per_rule"]["unassigned"]["raised"] == 1, run
            refusal: DBAPIError | None = None
            try:
                await deleter.execute(
                    text("DELETE FROM clients WHERE id = :id AND version = 1"),
                    {"id": victim["id"]},
                )
                await deleter.commit()
            except DBAPIError as exc:
                refusal = exc
                await deleter.rollback()
        assert await dangling_now(engine) == {}
        assert refusal is not None, "the delete went through"
        sqlstate = getattr(getattr(refusal.orig, "__cause__", None), "sqlstate", None)
        assert sqlstate in ("23503", "40001"), refusal


class TestTruncate:
    @pytest.mark.parametrize("parent", ["clients", "rule_runs"])
    async def test_truncate_cascade_of_a_parent_leaves_no_orphans(
        self, client: AsyncClient, connection: AsyncConnection, parent: str
    ) -> None:
        """With the foreign keys, ``TRUNCATE clients CASCADE`` (or ``rule_runs``) also
        emptied ``flags`` and ``client_health_history``; without them (and before the
        AFTER TRUNCATE trigger ``refuse_orphans``) TRUNCATE emptied the parent and left
        every flag and health point pointing at nothing. Expected: refused, or
        the children emptied too."""
        await create_client(client, lifecycle_stage="active")
        await run_rules(client, iso(past(0)))
        savepoint = await connection.begin_nested()
        try:
            await connection.execute(text(f"TRUNCATE {parent} CASCADE"))
        except DBAPIError:
            await savepoint.rollback()
            return  # refused: fine
        found = await dangling(connection)
        await savepoint.rollback()
        assert found == {}


# ---------------------------------------------------------------------------------------
# Other ways to write rows (single transaction)
# ---------------------------------------------------------------------------------------

FLAG_COLUMNS = (
    "id, rule_key, rule_version, subject_type, subject_id, client_id, severity, status,"
    " evidence, raised_at, raised_by_run_id, version"
)


async def refused_fk(conn: AsyncConnection, sql: str, **binds: Any) -> str | None:
    """Run ``sql`` in a savepoint that must fail with SQLSTATE 23503; answer the
    constraint it names (None when it names none)."""
    savepoint = await conn.begin_nested()
    with pytest.raises(DBAPIError) as caught:
        await conn.execute(text(sql), binds)
    await savepoint.rollback()
    cause = getattr(caught.value.orig, "__cause__", None)
    assert getattr(cause, "sqlstate", None) == "23503", caught.value
    name = getattr(cause, "constraint_name", None)
    return name if isinstance(name, str) else None


class TestOtherWritePaths:
    async def _flagged(self, http: AsyncClient) -> tuple[str, str]:
        acme = await create_client(http, lifecycle_stage="active")
        run = await run_rules(http, iso(past(0)))
        return str(acme["id"]), str(run["id"])

    async def test_copy_merge_upsert_and_big_multi_row_inserts_are_checked(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        """COPY, MERGE and a 2,000-row INSERT … SELECT whose one bad row is the last are
        refused as a whole (transition tables cover them all); an upsert cannot move a
        flag to another client."""
        known, run = await self._flagged(client)
        missing = str(uuid.uuid4())
        before = await dangling(connection)
        assert before == {}

        many = (
            f"INSERT INTO flags ({FLAG_COLUMNS}) SELECT gen_random_uuid(), 'overdue_follow_up',"
            " 1, 'client', gen_random_uuid(), CASE WHEN g = 2000 THEN CAST(:missing AS uuid)"
            " ELSE CAST(:known AS uuid) END, 'low', 'open', '{}', now(), :run, 1"
            " FROM generate_series(1, 2000) g"
        )
        assert (
            await refused_fk(connection, many, missing=missing, known=known, run=run)
            == "fk_flags_client_id_clients"
        )
        merge = (
            "MERGE INTO flags f USING (SELECT gen_random_uuid() AS id) s ON f.id = s.id"
            f" WHEN NOT MATCHED THEN INSERT ({FLAG_COLUMNS}) VALUES (s.id, 'overdue_follow_up',"
            " 1, 'client', CAST(:missing AS uuid), CAST(:missing AS uuid), 'low', 'open', '{}',"
            " now(), :run, 1)"
        )
        assert (
            await refused_fk(connection, merge, missing=missing, run=run)
            == "fk_flags_client_id_clients"
        )
        upsert = (
            f"INSERT INTO flags ({FLAG_COLUMNS}) SELECT id, rule_key, rule_version,"
            " subject_type, subject_id, CAST(:missing AS uuid), severity, status, evidence,"
            " raised_at, raised_by_run_id, version FROM flags WHERE client_id = :known"
            " ON CONFLICT (id) DO UPDATE SET client_id = EXCLUDED.client_id"
        )
        await refused_fk(connection, upsert, missing=missing, known=known)

        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        savepoint = await connection.begin_nested()
        with pytest.raises(asyncpg.ForeignKeyViolationError) as caught:
            await driver.copy_records_to_table(
                "client_health_history",
                records=[
                    (uuid.UUID(known), uuid.uuid4(), datetime.now(UTC), 50),
                ],
                columns=["client_id", "run_id", "at", "score"],
            )
        await savepoint.rollback()
        assert caught.value.constraint_name == "fk_client_health_history_run_id_rule_runs"
        assert await dangling(connection) == {}

    async def test_one_statement_deleting_the_client_and_flagging_it_is_refused(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        """A writable CTE deletes a client (which nothing refers to yet) and inserts a
        flag for it in the same statement, in either arrangement: the per-statement
        check runs after the statement and must refuse it."""
        _, run = await self._flagged(client)
        lonely = await create_client(client, lifecycle_stage="prospect")
        delete_then_flag = (
            "WITH gone AS (DELETE FROM clients WHERE id = :id RETURNING id)"
            f" INSERT INTO flags ({FLAG_COLUMNS}) SELECT gen_random_uuid(), 'unassigned', 1,"
            " 'client', gone.id, gone.id, 'low', 'open', '{}', now(), :run, 1 FROM gone"
        )
        flag_then_delete = (
            f"WITH flagged AS (INSERT INTO flags ({FLAG_COLUMNS}) VALUES (gen_random_uuid(),"
            " 'unassigned', 1, 'client', :id, :id, 'low', 'open', '{}', now(), :run, 1)"
            " RETURNING client_id) DELETE FROM clients WHERE id = :id"
        )
        for sql in (delete_then_flag, flag_then_delete):
            assert await refused_fk(connection, sql, id=lonely["id"], run=run) in (
                "fk_flags_client_id_clients",
                None,
            ), sql
        assert await dangling(connection) == {}


# ---------------------------------------------------------------------------------------
# Quota deletes (flags cascade) while a run writes
# ---------------------------------------------------------------------------------------


class TestQuotaDeletes:
    async def test_a_quota_with_flags_is_deleted_with_them(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        """DELETE /v1/quotas/{id} cascades to its flags (and their events): 204, nothing
        left behind."""
        start = past(200)
        anna = await create_manager(client)
        quota = await create_quota(client, anna["id"], iso(start), iso(start + 100 * D))
        await run_rules(client, iso(start + 100 * D - S))  # behind pace
        await run_rules(client, iso(start + 100 * D + D))  # resolved; missed
        flags = await connection.execute(
            text("SELECT rule_key, status FROM flags WHERE quota_id = :q ORDER BY rule_key"),
            {"q": quota["id"]},
        )
        assert [tuple(r) for r in flags] == [
            ("quota_behind_pace", "resolved"),
            ("quota_missed", "open"),
        ]
        response = await client.delete(f"/v1/quotas/{quota['id']}")
        assert response.status_code == 204, response.text
        left = await connection.execute(
            text(
                "SELECT (SELECT count(*) FROM flags WHERE quota_id = :q OR subject_id = :q),"
                " (SELECT count(*) FROM flag_events e WHERE NOT EXISTS"
                " (SELECT 1 FROM flags f WHERE f.id = e.flag_id))"
            ),
            {"q": quota["id"]},
        )
        assert tuple(left.one()) == (0, 0)
        assert await dangling(connection) == {}

    async def test_a_quota_delete_during_a_runs_writes_does_not_deadlock(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        """A run at a quota's end resolves its ``quota_behind_pace`` flag (row lock on that
        flag) and then raises ``quota_missed`` for the same quota (the foreign key on
        ``flags.quota_id`` takes a KEY SHARE lock on the quota). A DELETE
        /v1/quotas/{id} that comes between the two locks the quota and, cascading, waits
        for the flag: a deadlock, one of them is killed (409). Client deletes avoid
        this by waiting for a run's writes before locking a row; quota (and manager)
        deletes do too since the fix. (Here an uncommitted flag with the
        same unique key holds the run between its two statements, only to make the
        interleaving deterministic.) Expected: the run 201, the delete 204."""
        start = past(200)
        end = start + 100 * D
        anna = await create_manager(live_client)
        quota = await create_quota(live_client, anna["id"], iso(start), iso(end))
        first = await run_rules(live_client, iso(end - S))
        assert first["per_rule"]["quota_behind_pace"]["raised"] == 1, first
        deadlocks_before = await deadlocks(engine)
        async with engine.connect() as gate:
            await gate.execute(
                text(
                    "INSERT INTO flags (id, rule_key, rule_version, subject_type, subject_id,"
                    " severity, status, evidence, raised_at, raised_by_run_id, version)"
                    " VALUES (gen_random_uuid(), 'quota_missed', 1, 'quota', :q, 'high',"
                    " 'open', '{}', now(), :run, 1)"
                ),
                {"q": quota["id"], "run": first["id"]},
            )
            run = asyncio.ensure_future(
                live_client.post("/v1/rule-runs", json={"as_of": iso(end + D)})
            )
            await until_waiting(engine, 1, run)  # resolved behind_pace; raise waits
            delete = asyncio.ensure_future(live_client.delete(f"/v1/quotas/{quota['id']}"))
            await until_waiting(engine, 2, run, delete)
            await gate.rollback()
        ran, deleted = await asyncio.wait_for(asyncio.gather(run, delete), 30)
        await asyncio.sleep(1.2)  # statistics are flushed about once a second
        assert (ran.status_code, deleted.status_code) == (201, 204), (
            text_of(ran),
            text_of(deleted),
            f"deadlocks detected meanwhile: {await deadlocks(engine) - deadlocks_before}",
        )
        assert await dangling_now(engine) == {}


# ---------------------------------------------------------------------------------------
# HTTP: deleting clients with and without references
# ---------------------------------------------------------------------------------------


class TestClientDeleteOverHttp:
    async def test_without_history_204_with_flag_or_health_point_409(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        """A client without history goes (204). A client referred to only by a flag, or
        only by a health point (its flags gone), is a 409 problem (archive it), never a
        500 or a 422; the client stays."""
        fresh = await create_client(client, lifecycle_stage="prospect")
        flagged = await create_client(client, lifecycle_stage="active")
        healthy = await create_client(client, lifecycle_stage="active")
        await run_rules(client, iso(past(0)))
        # healthy: keep only its health point (no flag, no flag event).
        await connection.execute(
            text("DELETE FROM flags WHERE client_id = :id"), {"id": healthy["id"]}
        )
        points = await connection.execute(
            text("SELECT count(*) FROM client_health_history WHERE client_id = :id"),
            {"id": healthy["id"]},
        )
        assert points.scalar_one() == 1

        assert (await client.delete(f"/v1/clients/{fresh['id']}")).status_code == 204
        for target in (flagged, healthy):
            response = await client.delete(f"/v1/clients/{target['id']}")
            body = assert_problem(response, 409)
            assert "archive" in body["detail"], body
            assert (await client.get(f"/v1/clients/{target['id']}")).status_code == 200
        assert await dangling(connection) == {}

    async def test_a_client_whose_flag_was_resolved_still_cannot_be_deleted(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        """A resolved flag still refers to its client (the history keeps it): 409."""
        acme = await create_client(client, lifecycle_stage="active")
        await run_rules(client, iso(past(1)))
        (flag,) = await list_flags(client, rule="unassigned", client_id=acme["id"])
        await move_flag(client, flag["id"], "resolved", note="handled")
        assert_problem(await client.delete(f"/v1/clients/{acme['id']}"), 409)
        assert await dangling(connection) == {}


# ---------------------------------------------------------------------------------------
# Flag history: the synthesized raise and pagination
# ---------------------------------------------------------------------------------------


async def history_page(http: AsyncClient, flag_id: str, **params: Any) -> dict[str, Any]:
    response = await http.get(f"/v1/flags/{flag_id}/history", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def every_page(
    fetch: Callable[..., Awaitable[dict[str, Any]]], limit: int, **params: Any
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        extra = {"cursor": cursor} if cursor else {}
        body = await fetch(limit=limit, **params, **extra)
        assert len(body["items"]) <= limit
        found += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return found
    raise AssertionError("the cursor never ended")


class TestFlagHistoryPages:
    async def test_many_transitions_page_the_same_at_every_limit(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        """A flag with nine transitions: the raise (id = the flag's id, run = the raising
        run, at = raised_at) comes first, then the stored events in order; every page
        size (1 included: the first page is the synthesized raise alone, with a cursor)
        gives exactly the full list, no repeat and no gap; another flag's steps never
        appear."""
        acme = await create_client(client, lifecycle_stage="active")
        other = await create_client(client, lifecycle_stage="active")
        run = await run_rules(client, iso(past(1)))
        (flag,) = await list_flags(client, rule="unassigned", client_id=acme["id"])
        (noise,) = await list_flags(client, rule="unassigned", client_id=other["id"])
        until = iso(past(-10))
        moves = ["acknowledged", "snoozed", "open", "acknowledged", "snoozed", "open"]
        moves += ["snoozed", "open", "resolved"]
        for i, to in enumerate(moves):
            extra = {"until": until} if to == "snoozed" else {}
            await move_flag(client, flag["id"], to, note=f"step {i}", **extra)
            if i == 0:  # another flag's step, in between
                await move_flag(client, noise["id"], "acknowledged")

        full = (await history_page(client, flag["id"], limit=500))["items"]
        assert len(full) == 1 + len(moves)
        raise_step = full[0]
        assert raise_step["id"] == flag["id"]
        assert raise_step["flag_id"] == flag["id"]
        assert (raise_step["from_status"], raise_step["to_status"]) == (None, "open")
        assert (raise_step["actor"], raise_step["run_id"]) == ("rule_run", run["id"])
        assert ts(raise_step["at"]) == ts(flag["raised_at"])
        assert raise_step["note"] is None
        assert [s["to_status"] for s in full[1:]] == moves
        assert [s["note"] for s in full[1:]] == [f"step {i}" for i in range(len(moves))]
        assert all(s["flag_id"] == flag["id"] for s in full)
        stored = await connection.execute(
            text("SELECT id FROM flag_events WHERE flag_id = :f ORDER BY seq"),
            {"f": flag["id"]},
        )
        assert [s["id"] for s in full[1:]] == [str(r[0]) for r in stored]

        first = await history_page(client, flag["id"], limit=1)
        assert [s["id"] for s in first["items"]] == [flag["id"]]
        assert first["next_cursor"] is not None
        for limit in (1, 2, 3, 9, 10):

            async def fetch(**params: Any) -> dict[str, Any]:
                return await history_page(client, flag["id"], **params)

            assert await every_page(fetch, limit) == full, limit

    async def test_a_flag_without_transitions_is_one_step_and_no_cursor(
        self, client: AsyncClient
    ) -> None:
        acme = await create_client(client, lifecycle_stage="active")
        await run_rules(client, iso(past(1)))
        (flag,) = await list_flags(client, rule="unassigned", client_id=acme["id"])
        body = await history_page(client, flag["id"], limit=1)
        assert [s["id"] for s in body["items"]] == [flag["id"]]
        assert body["next_cursor"] is None


# ---------------------------------------------------------------------------------------
# Timeline: flags raised (from the flags) and resolved (stored events)
# ---------------------------------------------------------------------------------------


async def timeline_page(http: AsyncClient, client_id: str, **params: Any) -> dict[str, Any]:
    query = [(k, v) for k, v in params.items() if k != "kinds"]
    query += [("kinds", k) for k in params.get("kinds", [])]
    response = await http.get(f"/v1/clients/{client_id}/timeline", params=query)
    assert response.status_code == 200, response.text
    return dict(response.json())


class TestTimelineFlags:
    async def _raised_and_resolved_twice(
        self, http: AsyncClient
    ) -> tuple[dict[str, Any], list[tuple[str, str, datetime]]]:
        """A key client contacted at ``last``: no_recent_contact raised at last+31d,
        resolved at last+32d (contact), raised again at again+31d, resolved by a user.
        Answers the client and the expected (kind, id, at) of its flag events, oldest
        first (ids: the flag's for a raise, the stored event's for a resolve)."""
        last = past(200)
        anna = await create_manager(http)
        acme = await create_client(http, segment="key", lifecycle_stage="active")
        await create_assignment(http, acme["id"], anna["id"], "primary", iso(last - 400 * D))
        await create_interaction(http, acme["id"], anna["id"], occurred_at=iso(last))
        raised_1 = last + 31 * D
        await run_rules(http, iso(raised_1))
        (first,) = await list_flags(http, rule="no_recent_contact", client_id=acme["id"])
        again = raised_1 + H
        await create_interaction(http, acme["id"], anna["id"], occurred_at=iso(again))
        resolved_1 = last + 32 * D
        await run_rules(http, iso(resolved_1))
        raised_2 = again + 31 * D
        await run_rules(http, iso(raised_2))
        flags = await list_flags(http, rule="no_recent_contact", client_id=acme["id"])
        (second,) = [f for f in flags if f["id"] != first["id"]]
        resolved = await http.post(
            f"/v1/flags/{second['id']}/transitions", json={"to": "resolved", "note": "ok"}
        )
        assert resolved.status_code == 201, resolved.text
        resolved_2 = ts(resolved.json()["resolved_at"])
        steps_1 = (await history_page(http, first["id"], limit=500))["items"]
        steps_2 = (await history_page(http, second["id"], limit=500))["items"]
        expected = [
            ("flag_raised", first["id"], raised_1),
            ("flag_resolved", steps_1[-1]["id"], resolved_1),
            ("flag_raised", second["id"], raised_2),
            ("flag_resolved", steps_2[-1]["id"], resolved_2),
        ]
        return acme, expected

    async def test_raised_and_resolved_with_ids_times_and_cursors_in_both_orders(
        self, client: AsyncClient
    ) -> None:
        acme, expected = await self._raised_and_resolved_twice(client)
        kinds = ["flag_raised", "flag_resolved"]
        asc = (await timeline_page(client, acme["id"], limit=500, kinds=kinds))["items"]
        assert [(e["kind"], e["id"], ts(e["at"])) for e in asc] == expected
        assert asc[0]["data"]["flag_id"] == asc[0]["id"]
        assert asc[0]["data"]["actor"] == "rule_run"
        assert asc[0]["summary"] == "no_recent_contact raised"
        assert asc[1]["data"]["flag_id"] == asc[0]["id"]
        assert asc[1]["summary"] == "no_recent_contact resolved"
        assert asc[3]["data"]["note"] == "ok"
        desc = (await timeline_page(client, acme["id"], limit=500, kinds=kinds, order="desc"))[
            "items"
        ]
        assert desc == list(reversed(asc))
        for order, full in (("asc", asc), ("desc", desc)):
            for limit in (1, 2, 3):

                async def fetch(order: str = order, **params: Any) -> dict[str, Any]:
                    return await timeline_page(
                        client, acme["id"], kinds=kinds, order=order, **params
                    )

                assert await every_page(fetch, limit) == full, (order, limit)

        # Among every other kind (assignment, interactions) the flag events keep their
        # places and the pages still add up.
        everything = (await timeline_page(client, acme["id"], limit=500))["items"]
        flag_events = [e for e in everything if e["kind"] in kinds]
        assert flag_events == asc
        for order in ("asc", "desc"):
            whole = (await timeline_page(client, acme["id"], limit=500, order=order))["items"]

            async def fetch_all(order: str = order, **params: Any) -> dict[str, Any]:
                return await timeline_page(client, acme["id"], order=order, **params)

            assert await every_page(fetch_all, 1) == whole, order

    async def test_a_raise_and_a_resolve_at_the_same_instant_page_stably(
        self, client: AsyncClient
    ) -> None:
        """One run resolves ``unassigned`` (a primary now) and raises
        ``negative_sentiment`` (two negative contacts) at the same ``as_of``: the two
        events share ``at``; their order is (at, kind, id), stable over pages of 1 in
        both orders."""
        acme = await create_client(client, lifecycle_stage="active")  # unassigned
        anna = await create_manager(client)
        t0 = past(10)
        await run_rules(client, iso(t0))
        await create_assignment(client, acme["id"], anna["id"], "primary", iso(t0 + H))
        for n in (2, 3):
            await create_interaction(
                client, acme["id"], anna["id"], occurred_at=iso(t0 + n * H), sentiment="negative"
            )
        t1 = t0 + 4 * H
        run = await run_rules(client, iso(t1))
        assert run["per_rule"]["unassigned"]["resolved"] == 1, run
        assert run["per_rule"]["negative_sentiment"]["raised"] == 1, run
        kinds = ["flag_raised", "flag_resolved"]
        asc = (await timeline_page(client, acme["id"], limit=500, kinds=kinds))["items"]
        assert [(e["kind"], e["summary"], ts(e["at"])) for e in asc] == [
            ("flag_raised", "unassigned raised", t0),
            ("flag_raised", "negative_sentiment raised", t1),
            ("flag_resolved", "unassigned resolved", t1),
        ]
        for order, full in (("asc", asc), ("desc", list(reversed(asc)))):

            async def fetch(order: str = order, **params: Any) -> dict[str, Any]:
                return await timeline_page(client, acme["id"], kinds=kinds, order=order, **params)

            assert await every_page(fetch, 1) == full, order
            assert await every_page(fetch, 2) == full, order


# ---------------------------------------------------------------------------------------
# Migrations: down to 0011 and up again on a database with flags
# ---------------------------------------------------------------------------------------


async def _sql(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return [tuple(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def sql(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    return asyncio.run(_sql(url, query, *args))


SEED = """
WITH c AS (INSERT INTO clients (id, name, segment, lifecycle_stage, country, currency, version)
           VALUES ($1, 'Acme', 'key', 'active', 'HU', 'HUF', 1)),
r AS (INSERT INTO rule_runs (id, as_of, started_at, finished_at, duration_ms, trigger, actor,
                             raised, still_open, resolved, reopened, per_rule)
      VALUES ($2, '2026-01-01T00:00:00Z', now(), now(), 0, 'api', 'test', 2, 0, 0, 0, '{}')),
a AS (INSERT INTO audit_events (actor, roles, source, resource, resource_id, action, client_id,
                                changes)
      VALUES ('test', '{admin}', 'api', 'clients', CAST($1 AS text), 'create', $1, '{}'))
SELECT 1
"""
FLAGS = """
INSERT INTO flags (id, rule_key, rule_version, subject_type, subject_id, client_id, severity,
                   status, evidence, raised_at, raised_by_run_id, version, resolved_at,
                   resolved_by)
VALUES ($3, 'unassigned', 1, 'client', $1, $1, 'high', 'resolved', '{}',
        '2026-01-01T00:00:00Z', $2, 3, '2026-01-03T00:00:00Z', 'user'),
       ($4, 'no_recent_contact', 1, 'client', $1, $1, 'medium', 'open', '{}',
        '2026-01-01T00:00:00Z', $2, 1, NULL, NULL)
"""
EVENTS = """
INSERT INTO flag_events (id, flag_id, client_id, from_status, to_status, at, actor, run_id, note)
VALUES (gen_random_uuid(), $2, $1, 'open', 'acknowledged', '2026-01-02T00:00:00Z', 'anna',
        NULL, 'seen'),
       (gen_random_uuid(), $2, $1, 'acknowledged', 'resolved', '2026-01-03T00:00:00Z', 'anna',
        NULL, 'done')
"""
POINT = """
INSERT INTO client_health_history (client_id, run_id, at, score)
VALUES ($1, $2, '2026-01-01T00:00:00Z', 65)
"""


class TestMigrationsWithData:
    def test_down_to_0011_and_up_again_keeps_flags_history_and_health(self, fresh_url: str) -> None:
        """At head: a client, a run, a flag with two stored transitions, one without, a
        health point. Down to 0011: the foreign keys are back and each flag's history
        (``flag_events`` by ``seq``, which 0011's code reads) starts with its raise,
        then the transitions. Up again: the raise events are gone, the transitions and
        health point kept, the triggers back. The downgrade inserts the raise events
        after the stored ones (their ``seq`` is larger), so 0011's history lists a
        flag's raise *after* its acknowledge and resolve."""
        config = alembic_config()
        config.attributes["url"] = fresh_url
        client_id, run_id, flag_a, flag_b = (uuid.uuid4() for _ in range(4))

        def run() -> None:
            command.upgrade(config, "head")
            sql(fresh_url, SEED, client_id, run_id)
            sql(fresh_url, FLAGS, client_id, run_id, flag_a, flag_b)
            sql(fresh_url, EVENTS, client_id, flag_a)
            sql(fresh_url, POINT, client_id, run_id)

            command.downgrade(config, "0011_rules_perf")
            fks = {
                r[0]
                for r in sql(
                    fresh_url,
                    "SELECT conname FROM pg_constraint WHERE contype = 'f'"
                    " AND conrelid IN ('flags'::regclass, 'client_health_history'::regclass)",
                )
            }
            assert {
                "fk_flags_client_id_clients",
                "fk_flags_raised_by_run_id_rule_runs",
                "fk_flags_rule_key_rules",
                "fk_client_health_history_client_id_clients",
                "fk_client_health_history_run_id_rule_runs",
            } <= fks
            steps_b = sql(
                fresh_url,
                "SELECT from_status, to_status, run_id FROM flag_events WHERE flag_id = $1"
                " ORDER BY seq",
                flag_b,
            )
            assert steps_b == [(None, "open", run_id)]
            steps_a = sql(
                fresh_url,
                "SELECT from_status, to_status FROM flag_events WHERE flag_id = $1 ORDER BY seq",
                flag_a,
            )
            assert steps_a == [
                (None, "open"),
                ("open", "acknowledged"),
                ("acknowledged", "resolved"),
            ], steps_a

            command.upgrade(config, "head")
            assert sql(
                fresh_url,
                "SELECT from_status, to_status, note FROM flag_events WHERE flag_id = $1"
                " ORDER BY seq",
                flag_a,
            ) == [("open", "acknowledged", "seen"), ("acknowledged", "resolved", "done")]
            assert sql(
                fresh_url, "SELECT count(*) FROM flag_events WHERE flag_id = $1", flag_b
            ) == [(0,)]
            assert sql(fresh_url, "SELECT score FROM client_health_history") == [(65,)]
            assert sql(
                fresh_url,
                "SELECT count(*) FROM audit_events WHERE resource = 'clients' AND resource_id = $1",
                str(client_id),
            ) == [(1,)]
            triggers = {
                r[0]
                for r in sql(
                    fresh_url,
                    "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
                    " AND (tgname LIKE '%refer%' OR tgname LIKE '%rule_writes%')",
                )
            }
            assert {
                "flags_check_references",
                "clients_refuse_if_referenced",
                "clients_wait_for_rule_writes",
            } <= triggers

        in_thread(run)

    def test_upgrade_from_0011_with_stored_raises(self, fresh_url: str) -> None:
        """At 0011 (raises stored as ``flag_events``, real foreign keys): a client, a run,
        a flag raised and acknowledged, a health point. Up to head: the stored raise is
        gone, the acknowledge kept, the health point kept; the client now cannot be
        deleted (the trigger names the old constraint), an unreferenced one can."""
        config = alembic_config()
        config.attributes["url"] = fresh_url
        client_id, run_id, flag_a, flag_b = (uuid.uuid4() for _ in range(4))

        def run() -> None:
            command.upgrade(config, "0011_rules_perf")
            sql(fresh_url, SEED, client_id, run_id)
            sql(fresh_url, FLAGS, client_id, run_id, flag_a, flag_b)
            sql(
                fresh_url,
                "INSERT INTO flag_events (id, flag_id, client_id, from_status, to_status, at,"
                " actor, run_id) SELECT gen_random_uuid(), id, client_id, NULL, 'open',"
                " raised_at, 'rule_run', raised_by_run_id FROM flags ORDER BY id",
            )
            sql(fresh_url, EVENTS, client_id, flag_a)
            sql(fresh_url, POINT, client_id, run_id)

            command.upgrade(config, "head")
            assert sql(
                fresh_url,
                "SELECT flag_id, from_status, to_status FROM flag_events ORDER BY seq",
            ) == [(flag_a, "open", "acknowledged"), (flag_a, "acknowledged", "resolved")]
            assert sql(fresh_url, "SELECT score FROM client_health_history") == [(65,)]
            lonely = uuid.uuid4()
            sql(
                fresh_url,
                "INSERT INTO clients (id, name, segment, lifecycle_stage, country, currency,"
                " version) VALUES ($1, 'Lonely', 'small', 'prospect', 'HU', 'HUF', 1)",
                lonely,
            )
            assert sql(fresh_url, "DELETE FROM clients WHERE id = $1 RETURNING id", lonely) == [
                (lonely,)
            ]
            with pytest.raises(asyncpg.ForeignKeyViolationError) as refused:
                sql(fresh_url, "DELETE FROM clients WHERE id = $1", client_id)
            assert refused.value.constraint_name in (
                "fk_flags_client_id_clients",
                "fk_flag_events_client_id_clients",
            )

        in_thread(run)
