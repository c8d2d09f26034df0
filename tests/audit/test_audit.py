"""The append-only audit log (issue 7, item 3): one row per write, in the same transaction.

Every row carries the actor (the token's subject), their roles, the source (``api``,
``rule_run``...), the request id echoed in ``X-Request-ID``, the resource, its id, the
action and the changed fields as ``{field: [before, after]}``.

Tests run in the ``client`` fixture's rolled-back transaction, so every audit row a test
writes has the same ``at``: the transaction's ``now()``. The ``live_client`` test commits
for real; the audit log is never truncated, so it looks only at the ids it created.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import Settings
from app.core.auth import Role
from tests.assertions import assert_problem
from tests.conftest import make_token
from tests.factories import (
    create_assignment,
    create_client,
    create_complaint,
    create_interaction,
    create_manager,
)

D = timedelta(days=1)
H = timedelta(hours=1)
US = timedelta(microseconds=1)
BOOKKEEPING = {"version", "updated_at", "updated_by"}


def iso(value: datetime) -> str:
    return value.isoformat()


async def db_now(conn: AsyncConnection) -> datetime:
    value = (await conn.execute(text("SELECT now()"))).scalar_one()
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def bearer(settings: Settings, *roles: Role, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(settings, *roles, subject=subject)}"}


def request_id(response: Response) -> str:
    value = response.headers.get("X-Request-ID")
    assert isinstance(value, str), response.headers
    assert value
    return value


async def rows_of(conn: AsyncConnection, request: str) -> list[dict[str, Any]]:
    """The audit rows written by one request, in order."""
    result = await conn.execute(
        text("SELECT * FROM audit_events WHERE request_id = :r ORDER BY seq"), {"r": request}
    )
    return [dict(r._mapping) for r in result]


async def audit_count(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT count(*) FROM audit_events"))).scalar_one())


async def events(http: AsyncClient, **filters: Any) -> list[dict[str, Any]]:
    """Every audit event matching ``filters`` (admin, one page of up to 500)."""
    response = await http.get("/v1/audit-events", params={"limit": 500, **filters})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return list(body["items"])


def only_row(rows: list[dict[str, Any]], resource: str, action: str) -> dict[str, Any]:
    matching = [r for r in rows if r["resource"] == resource and r["action"] == action]
    assert len(matching) == 1, rows
    return matching[0]


def assert_who(
    row: dict[str, Any], actor: str, roles: list[str], request: str, source: str = "api"
) -> None:
    assert row["actor"] == actor
    assert list(row["roles"]) == roles
    assert row["source"] == source
    assert row["request_id"] == request


async def assigned_client(
    http: AsyncClient, conn: AsyncConnection, manager_id: str, **fields: Any
) -> dict[str, Any]:
    """A client whose primary is ``manager_id`` since yesterday (in scope at now())."""
    created = await create_client(http, **fields)
    await create_assignment(http, created["id"], manager_id, "primary", iso(await db_now(conn) - D))
    return created


class TestEveryWriteIsAudited:
    async def test_create(self, client: AsyncClient, connection: AsyncConnection) -> None:
        response = await client.post(
            "/v1/clients",
            json={"name": "Ügyfél Kft.", "segment": "key", "country": "HU", "currency": "HUF"},
        )
        assert response.status_code == 201, response.text
        created = response.json()
        (row,) = await rows_of(connection, request_id(response))
        assert_who(row, "test-admin", ["admin"], request_id(response))
        assert (row["resource"], row["resource_id"], row["action"]) == (
            "clients",
            created["id"],
            "create",
        )
        assert str(row["client_id"]) == created["id"]
        changes = row["changes"]
        assert changes["name"] == [None, "Ügyfél Kft."]
        assert changes["segment"] == [None, "key"]
        assert changes["id"] == [None, created["id"]]
        assert not BOOKKEEPING & changes.keys()
        assert row["at"] == await db_now(connection)

    async def test_create_of_every_resource(
        self, client: AsyncClient, connection: AsyncConnection, subtests: pytest.Subtests
    ) -> None:
        now = await db_now(connection)
        manager = await create_manager(client)
        acme = await assigned_client(client, connection, manager["id"])
        bodies: dict[str, tuple[str, dict[str, Any]]] = {
            "managers": (
                "/v1/managers",
                {"email": "audit@example.com", "full_name": "Audited", "time_zone": "UTC"},
            ),
            "assignments": (
                "/v1/assignments",
                {"client_id": acme["id"], "manager_id": manager["id"], "role": "secondary"},
            ),
            "interactions": (
                "/v1/interactions",
                {
                    "client_id": acme["id"],
                    "manager_id": manager["id"],
                    "channel": "meeting",
                    "direction": "outbound",
                    "occurred_at": iso(now - H),
                    "subject": "Kick-off",
                },
            ),
            "complaints": (
                "/v1/complaints",
                {
                    "client_id": acme["id"],
                    "title": "Late",
                    "category": "delivery",
                    "severity": "low",
                },
            ),
            "sales": (
                "/v1/sales",
                {
                    "client_id": acme["id"],
                    "amount": {"amount": "1000.00", "currency": "HUF"},
                    "closed_at": iso(now - H),
                    "kind": "new",
                },
            ),
            "quotas": (
                "/v1/quotas",
                {
                    "manager_id": manager["id"],
                    "metric": "interaction_count",
                    "period_start": iso(now + 30 * D),
                    "period_end": iso(now + 60 * D),
                    "target_count": 3,
                },
            ),
            "fx_rates": (
                "/v1/fx-rates",
                {"base": "EUR", "quote": "HUF", "rate": "400", "valid_on": "2020-01-01"},
            ),
            "sla_policies": (
                "/v1/sla-policies",
                {
                    "severity": "high",
                    "segment": "key",
                    "first_response_hours": 1,
                    "resolution_hours": 8,
                },
            ),
        }
        for resource, (url, body) in bodies.items():
            with subtests.test(resource=resource):
                response = await client.post(url, json=body)
                assert response.status_code == 201, response.text
                row = only_row(await rows_of(connection, request_id(response)), resource, "create")
                assert_who(row, "test-admin", ["admin"], request_id(response))
                assert row["resource_id"] == response.json()["id"]
                if "client_id" in body:
                    assert str(row["client_id"]) == acme["id"]

    async def test_patch_records_before_and_after(
        self, client: AsyncClient, connection: AsyncConnection, settings: Settings
    ) -> None:
        """An account manager's PATCH: the actor is their manager id, the changes only the
        field that changed (the version, updated_at and updated_by are bookkeeping)."""
        manager = await create_manager(client)
        acme = await assigned_client(client, connection, manager["id"], name="Old name")
        headers = bearer(settings, Role.account_manager, subject=manager["id"])
        response = await client.patch(
            f"/v1/clients/{acme['id']}", json={"name": "New name"}, headers=headers
        )
        assert response.status_code == 200, response.text
        (row,) = await rows_of(connection, request_id(response))
        assert_who(row, manager["id"], ["account_manager"], request_id(response))
        assert (row["resource"], row["resource_id"], row["action"]) == (
            "clients",
            acme["id"],
            "update",
        )
        assert row["changes"] == {"name": ["Old name", "New name"]}

    async def test_request_id_from_the_caller_is_kept(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        mine = uuid.uuid4().hex
        response = await client.post(
            "/v1/managers",
            json={"email": "rid@example.com", "full_name": "Rid"},
            headers={"X-Request-ID": mine},
        )
        assert response.status_code == 201, response.text
        assert request_id(response) == mine
        assert [r["resource"] for r in await rows_of(connection, mine)] == ["managers"]

    async def test_roles_are_all_the_callers_roles(
        self, client: AsyncClient, connection: AsyncConnection, settings: Settings
    ) -> None:
        headers = bearer(settings, Role.sales_manager, Role.admin, subject="two-hats")
        response = await client.post(
            "/v1/managers", json={"email": "hats@example.com", "full_name": "Hats"}, headers=headers
        )
        assert response.status_code == 201, response.text
        (row,) = await rows_of(connection, request_id(response))
        assert_who(row, "two-hats", ["admin", "sales_manager"], request_id(response))

    async def test_delete(self, client: AsyncClient, connection: AsyncConnection) -> None:
        manager = await create_manager(client)
        acme = await assigned_client(client, connection, manager["id"])
        interaction = await create_interaction(
            client,
            acme["id"],
            manager["id"],
            subject="Logged in error",
            occurred_at=iso(await db_now(connection) - H),
        )
        response = await client.delete(f"/v1/interactions/{interaction['id']}")
        assert response.status_code == 204, response.text
        (row,) = await rows_of(connection, request_id(response))
        assert_who(row, "test-admin", ["admin"], request_id(response))
        assert (row["resource"], row["resource_id"], row["action"]) == (
            "interactions",
            interaction["id"],
            "delete",
        )
        assert str(row["client_id"]) == acme["id"]
        assert row["changes"]["subject"] == ["Logged in error", None]
        assert row["changes"]["manager_id"] == [manager["id"], None]

    async def test_archive(self, client: AsyncClient, connection: AsyncConnection) -> None:
        acme = await create_client(client)
        response = await client.post(f"/v1/clients/{acme['id']}/archive")
        assert response.status_code == 200, response.text
        (row,) = await rows_of(connection, request_id(response))
        assert row["action"] == "update"
        assert list(row["changes"]) == ["archived_at"]
        before, after = row["changes"]["archived_at"]
        assert before is None
        assert datetime.fromisoformat(after) == datetime.fromisoformat(
            response.json()["archived_at"].replace("Z", "+00:00")
        )

    async def test_complaint_transition(
        self, client: AsyncClient, connection: AsyncConnection, settings: Settings
    ) -> None:
        manager = await create_manager(client)
        acme = await assigned_client(client, connection, manager["id"])
        complaint = await create_complaint(client, acme["id"])
        headers = bearer(settings, Role.account_manager, subject=manager["id"])
        response = await client.post(
            f"/v1/complaints/{complaint['id']}/transitions",
            json={"to": "acknowledged", "note": "Seen"},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        row = only_row(await rows_of(connection, request_id(response)), "complaints", "update")
        assert_who(row, manager["id"], ["account_manager"], request_id(response))
        assert row["resource_id"] == complaint["id"]
        assert row["changes"]["status"] == ["open", "acknowledged"]
        assert row["changes"]["first_responded_at"][0] is None
        assert str(row["client_id"]) == acme["id"]

    async def test_flag_transition(self, client: AsyncClient, connection: AsyncConnection) -> None:
        acme = await create_client(client, lifecycle_stage="active")  # unassigned: flagged
        assert (await client.post("/v1/rule-runs", json={})).status_code == 201
        flags = (await client.get("/v1/flags", params={"client_id": acme["id"]})).json()["items"]
        (flag,) = [f for f in flags if f["rule_key"] == "unassigned"]
        response = await client.post(
            f"/v1/flags/{flag['id']}/transitions", json={"to": "acknowledged", "note": "On it"}
        )
        assert response.status_code == 201, response.text
        (row,) = await rows_of(connection, request_id(response))
        assert_who(row, "test-admin", ["admin"], request_id(response))
        assert (row["resource"], row["resource_id"], row["action"]) == (
            "flags",
            flag["id"],
            "update",
        )
        assert row["changes"]["status"] == ["open", "acknowledged"]
        assert row["changes"]["note"] == [None, "On it"]

    async def test_handover(self, client: AsyncClient, connection: AsyncConnection) -> None:
        old, new = (await create_manager(client))["id"], (await create_manager(client))["id"]
        acme = await create_client(client)
        ended = await create_assignment(
            client, acme["id"], old, "primary", iso(await db_now(connection) - D)
        )
        response = await client.post(
            f"/v1/clients/{acme['id']}/handover", json={"to_manager_id": new}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        rows = await rows_of(connection, request_id(response))
        assert [(r["resource"], r["action"]) for r in rows] == [
            ("assignments", "update"),
            ("assignments", "create"),
        ]
        assert rows[0]["resource_id"] == ended["id"]
        before, after = rows[0]["changes"]["ends_at"]
        assert before is None
        assert datetime.fromisoformat(after) == datetime.fromisoformat(
            body["at"].replace("Z", "+00:00")
        )
        assert rows[1]["resource_id"] == body["started"]["id"]
        assert rows[1]["changes"]["manager_id"] == [None, new]
        assert rows[1]["changes"]["role"] == [None, "primary"]
        for row in rows:
            assert_who(row, "test-admin", ["admin"], request_id(response))
            assert str(row["client_id"]) == acme["id"]

    async def test_absence_covers(
        self, client: AsyncClient, connection: AsyncConnection, settings: Settings
    ) -> None:
        """The covers are inserted set-based (not through the ORM) and audited too."""
        now = await db_now(connection)
        lead = await create_manager(client, role="sales_manager")
        absent = await create_manager(client, reports_to_id=lead["id"])
        cover = await create_manager(client, reports_to_id=lead["id"])
        first = await assigned_client(client, connection, absent["id"])
        second = await assigned_client(client, connection, absent["id"])
        response = await client.post(
            f"/v1/managers/{absent['id']}/absences",
            json={
                "starts_at": iso(now + D),
                "ends_at": iso(now + 3 * D),
                "cover_manager_id": cover["id"],
                "reason": "Leave",
            },
            headers=bearer(settings, Role.sales_manager, subject=lead["id"]),
        )
        assert response.status_code == 201, response.text
        body = response.json()
        rows = await rows_of(connection, request_id(response))
        absence = only_row(rows, "absences", "create")
        assert absence["resource_id"] == body["id"]
        assert absence["changes"]["cover_manager_id"] == [None, cover["id"]]
        covers = [r for r in rows if r["resource"] == "assignments"]
        assert {r["resource_id"] for r in covers} == {a["id"] for a in body["assignments"]}
        assert {str(r["client_id"]) for r in covers} == {first["id"], second["id"]}
        for row in covers:
            assert row["action"] == "create"
            assert row["changes"]["role"] == [None, "cover"]
            assert row["changes"]["manager_id"] == [None, cover["id"]]
            assert row["changes"]["absence_id"] == [None, body["id"]]
        for row in rows:
            assert_who(row, lead["id"], ["sales_manager"], request_id(response))

    async def test_rule_change(self, client: AsyncClient, connection: AsyncConnection) -> None:
        before = (await client.get("/v1/rules/unassigned")).json()["severity"]
        response = await client.patch("/v1/rules/unassigned", json={"severity": "low"})
        assert response.status_code == 200, response.text
        row = only_row(await rows_of(connection, request_id(response)), "rules", "update")
        assert row["resource_id"] == "unassigned"
        assert row["changes"]["severity"] == [before, "low"]

    async def test_rule_run_raises_and_resolves_flags(
        self, client: AsyncClient, connection: AsyncConnection, settings: Settings
    ) -> None:
        """Flags a run raises or resolves (set-based SQL) are audited with source
        ``rule_run``, the caller who started the run, their roles and the request id."""
        acme = await create_client(client, lifecycle_stage="active")  # unassigned
        headers = bearer(settings, Role.service, subject="scheduler-svc")
        run = await client.post("/v1/rule-runs", json={}, headers=headers)
        assert run.status_code == 201, run.text
        (flag,) = [
            f
            for f in (await client.get("/v1/flags", params={"client_id": acme["id"]})).json()[
                "items"
            ]
            if f["rule_key"] == "unassigned"
        ]
        (raised,) = await events(client, resource="flags", resource_id=flag["id"])
        assert (raised["action"], raised["source"], raised["actor"]) == (
            "create",
            "rule_run",
            "scheduler-svc",
        )
        assert raised["client_id"] == acme["id"]
        assert raised["changes"]["status"] == [None, "open"]
        assert raised["changes"]["rule_key"] == [None, "unassigned"]

        await create_assignment(
            client,
            acme["id"],
            (await create_manager(client))["id"],
            "primary",
            iso(await db_now(connection) - D),
        )
        again = await client.post("/v1/rule-runs", json={}, headers=headers)
        assert again.status_code == 201, again.text
        _, resolved = await events(client, resource="flags", resource_id=flag["id"])
        assert (resolved["action"], resolved["source"]) == ("update", "rule_run")
        assert resolved["changes"] == {"status": ["open", "resolved"]}

        # Like every other write, the rows name the caller's roles and the request.
        assert (raised["roles"], raised["request_id"], resolved["request_id"]) == (
            ["service"],
            request_id(run),
            request_id(again),
        )


class TestImportSource:
    async def test_an_uploaded_file_is_audited_as_import(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        """``POST /v1/imports`` (the job runs after the 202, with its own session): each
        row it writes is audited with source ``import``, the uploader, their roles and
        the request id the upload was answered with."""
        tag = uuid.uuid4().hex[:8]
        data = f"external_ref,email,full_name\r\naud-{tag},{tag}@imp.test,Ida Import\r\n"
        response = await live_client.post(
            "/v1/imports",
            data={"resource": "managers"},
            files={"file": ("managers.csv", data.encode(), "text/csv")},
        )
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        for _ in range(300):
            job = (await live_client.get(location)).json()
            if job["status"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.05)
        assert job["status"] == "succeeded", job
        async with engine.connect() as other:
            result = await other.execute(
                text(
                    "SELECT actor, roles, source, request_id, resource, action FROM audit_events"
                    " WHERE changes -> 'import_id' ->> 1 = :id ORDER BY seq"
                ),
                {"id": job["id"]},
            )
            rows = [tuple(r) for r in result]
        assert [(r[0], list(r[1]), r[2], r[4], r[5]) for r in rows] == [
            ("test-admin", ["admin"], "import", "managers", "create")
        ]
        assert rows[0][3] == request_id(response)


class TestFailedRequestsLeaveNoAuditRow:
    async def test_handover_conflict_after_a_flush(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        """The handover ends the old primary (flushed, audited) and only then finds that
        the new primary collides with their own cover: 409, and the ended assignment and
        its audit row are both rolled back."""
        now = await db_now(connection)
        old, coverer = (await create_manager(client))["id"], (await create_manager(client))["id"]
        acme = await create_client(client)
        primary = await create_assignment(client, acme["id"], old, "primary", iso(now - D))
        await create_assignment(client, acme["id"], coverer, "cover", iso(now - D))
        count = await audit_count(connection)
        response = await client.post(
            f"/v1/clients/{acme['id']}/handover", json={"to_manager_id": coverer}
        )
        assert_problem(response, 409)
        assert await audit_count(connection) == count
        assert await rows_of(connection, request_id(response)) == []
        assert (await client.get(f"/v1/assignments/{primary['id']}")).json()["ends_at"] is None

    async def test_absence_conflict_after_a_flush(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        """The absence row is flushed (and audited) before the covers are found to clash
        with an existing cover: 409, nothing left behind."""
        now = await db_now(connection)
        absent, cover, other = [(await create_manager(client))["id"] for _ in range(3)]
        acme = await create_client(client)
        await create_assignment(client, acme["id"], absent, "primary", iso(now - D))
        await create_assignment(client, acme["id"], other, "cover", iso(now + D), iso(now + 5 * D))
        count = await audit_count(connection)
        response = await client.post(
            f"/v1/managers/{absent}/absences",
            json={
                "starts_at": iso(now + 2 * D),
                "ends_at": iso(now + 3 * D),
                "cover_manager_id": cover,
            },
        )
        assert_problem(response, 409)
        assert await audit_count(connection) == count
        assert await rows_of(connection, request_id(response)) == []

    async def test_rejected_writes(
        self, client: AsyncClient, connection: AsyncConnection, subtests: pytest.Subtests
    ) -> None:
        acme = await create_client(client, name="Kept")
        manager = await create_manager(client)
        await create_interaction(
            client, acme["id"], manager["id"], occurred_at=iso(await db_now(connection) - H)
        )
        url = f"/v1/clients/{acme['id']}"
        attempts: list[tuple[str, str, dict[str, Any] | None, dict[str, str], int]] = [
            ("PATCH", url, {"parent_id": acme["id"]}, {}, 422),  # refused by a constraint
            ("PATCH", url, {"name": None}, {}, 422),
            ("PATCH", url, {"name": "Stale"}, {"If-Match": '"999"'}, 412),
            ("DELETE", url, None, {}, 409),  # has history
            ("POST", "/v1/clients", {"name": "No segment"}, {}, 422),
        ]
        for method, target, body, headers, status in attempts:
            with subtests.test(method=method, body=body, status=status):
                count = await audit_count(connection)
                response = await client.request(method, target, json=body, headers=headers)
                assert_problem(response, status)
                assert await audit_count(connection) == count
                assert await rows_of(connection, request_id(response)) == []
        assert (await client.get(url)).json()["name"] == "Kept"

    async def test_forbidden_and_hidden_writes(
        self,
        client: AsyncClient,
        connection: AsyncConnection,
        settings: Settings,
    ) -> None:
        acme = await create_client(client)
        count = await audit_count(connection)
        viewer = bearer(settings, Role.viewer, subject="viewer")
        stranger = bearer(settings, Role.account_manager, subject=str(uuid.uuid4()))
        url = f"/v1/clients/{acme['id']}"
        assert_problem(await client.patch(url, json={"name": "X"}, headers=viewer), 403)
        assert_problem(await client.patch(url, json={"name": "X"}, headers=stranger), 404)
        assert await audit_count(connection) == count

    async def test_committed_for_real(self, live_client: AsyncClient, engine: AsyncEngine) -> None:
        """With real commits (``live_client``): a successful write's row is visible from
        another connection; a request that fails after flushing leaves none."""
        now = datetime.now(UTC)
        created = await live_client.post(
            "/v1/clients",
            json={"name": "Live", "segment": "small", "country": "HU", "currency": "HUF"},
        )
        assert created.status_code == 201, created.text
        acme = created.json()["id"]
        old = (await create_manager(live_client))["id"]
        coverer = (await create_manager(live_client))["id"]
        primary = await create_assignment(live_client, acme, old, "primary", iso(now - D))
        await create_assignment(live_client, acme, coverer, "cover", iso(now - D))
        failed = await live_client.post(
            f"/v1/clients/{acme}/handover", json={"to_manager_id": coverer}
        )
        assert_problem(failed, 409)
        async with engine.connect() as other:
            result = await other.execute(
                text(
                    "SELECT resource, action, request_id FROM audit_events"
                    " WHERE client_id = :c ORDER BY seq"
                ),
                {"c": acme},
            )
            rows = [tuple(r) for r in result]
            assert rows[0] == ("clients", "create", request_id(created))
            assert [r[:2] for r in rows[1:]] == [("assignments", "create")] * 2
            assert request_id(failed) not in {r[2] for r in rows}
            ends_at = (
                await other.execute(
                    text("SELECT ends_at FROM assignments WHERE id = :a"), {"a": primary["id"]}
                )
            ).scalar_one()
            assert ends_at is None


class TestAppendOnly:
    @pytest.mark.parametrize(
        ("operation", "sql"),
        [
            ("UPDATE", "UPDATE audit_events SET actor = 'intruder' WHERE seq = :seq"),
            ("DELETE", "DELETE FROM audit_events WHERE seq = :seq"),
            ("TRUNCATE", "TRUNCATE audit_events"),
        ],
    )
    async def test_rows_cannot_be_changed(
        self, client: AsyncClient, connection: AsyncConnection, operation: str, sql: str
    ) -> None:
        response = await client.post(
            "/v1/managers", json={"email": "kept@example.com", "full_name": "Kept"}
        )
        (row,) = await rows_of(connection, request_id(response))
        with pytest.raises(DBAPIError) as raised:
            async with connection.begin_nested():  # the failure must not end the test's txn
                await connection.execute(text(sql), {"seq": row["seq"]})
        assert f"append-only ({operation} refused)" in str(raised.value)
        assert getattr(raised.value.orig, "sqlstate", None) == "42501"  # insufficient_privilege
        (after,) = await rows_of(connection, request_id(response))
        assert after == row

    async def test_inserting_is_allowed(self, connection: AsyncConnection) -> None:
        await connection.execute(
            text(
                "INSERT INTO audit_events (actor, roles, source, resource, resource_id, action,"
                " changes) VALUES ('cli', ARRAY[]::text[], 'cli', 'clients', 'x', 'create', '{}')"
            )
        )


class TestAuditEventsApi:
    async def test_filters(
        self, client: AsyncClient, connection: AsyncConnection, settings: Settings
    ) -> None:
        now = await db_now(connection)
        lead = await create_manager(client, role="sales_manager")
        lead_headers = bearer(settings, Role.sales_manager, subject=lead["id"])
        first = await create_client(client, name="First")
        response = await client.post(
            "/v1/clients",
            json={"name": "Second", "segment": "small", "country": "HU", "currency": "HUF"},
            headers=lead_headers,
        )
        second = response.json()
        await client.patch(f"/v1/clients/{first['id']}", json={"name": "First renamed"})

        mine = await events(client, resource="clients", resource_id=first["id"])
        assert [(e["action"], e["actor"]) for e in mine] == [
            ("create", "test-admin"),
            ("update", "test-admin"),
        ]
        assert mine[0]["seq"] < mine[1]["seq"]
        assert mine[1]["changes"] == {"name": ["First", "First renamed"]}
        by_lead = await events(client, actor=lead["id"])
        assert [(e["resource"], e["resource_id"]) for e in by_lead] == [("clients", second["id"])]
        assert by_lead[0]["roles"] == ["sales_manager"]
        assert {e["resource"] for e in await events(client, resource="managers")} >= {"managers"}
        # Every row of this transaction has at = now(): at_from is inclusive, at_to exclusive.
        ours = {"resource": "clients", "resource_id": first["id"]}
        assert len(await events(client, **ours, at_from=iso(now))) == 2
        assert await events(client, **ours, at_from=iso(now + US)) == []
        assert await events(client, **ours, at_to=iso(now)) == []
        assert len(await events(client, **ours, at_to=iso(now + US))) == 2
        assert datetime.fromisoformat(mine[0]["at"].replace("Z", "+00:00")) == now

    async def test_pagination(self, client: AsyncClient, settings: Settings) -> None:
        actor = f"pager-{uuid.uuid4().hex[:8]}"
        headers = bearer(settings, Role.admin, subject=actor)
        for n in range(5):
            response = await client.post(
                "/v1/managers",
                json={"email": f"{actor}-{n}@example.com", "full_name": f"P {n}"},
                headers=headers,
            )
            assert response.status_code == 201, response.text
        everything = await events(client, actor=actor)
        assert len(everything) == 5
        pages: list[list[int]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"actor": actor, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            body = (await client.get("/v1/audit-events", params=params)).json()
            pages.append([e["seq"] for e in body["items"]])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert [len(p) for p in pages] == [2, 2, 1]
        assert [s for p in pages for s in p] == [e["seq"] for e in everything]
        assert_problem(await client.get("/v1/audit-events", params={"cursor": "garbage"}), 422)
        assert_problem(await client.get("/v1/audit-events", params={"limit": 0}), 422)

    @pytest.mark.parametrize(
        "role", [Role.viewer, Role.service, Role.sales_manager, Role.account_manager]
    )
    async def test_admin_only(self, client: AsyncClient, settings: Settings, role: Role) -> None:
        headers = bearer(settings, role, subject=str(uuid.uuid4()))
        assert_problem(await client.get("/v1/audit-events", headers=headers), 403)

    async def test_needs_a_token(self, anon: AsyncClient) -> None:
        assert_problem(await anon.get("/v1/audit-events"), 401)


class TestClientHistory:
    async def test_the_clients_and_its_records_changes(
        self,
        client: AsyncClient,
        connection: AsyncConnection,
        settings: Settings,
        subtests: pytest.Subtests,
    ) -> None:
        now = await db_now(connection)
        manager = await create_manager(client)
        other_manager = await create_manager(client)
        acme = await assigned_client(client, connection, manager["id"], name="Acme")
        other = await assigned_client(client, connection, other_manager["id"])
        await client.patch(f"/v1/clients/{acme['id']}", json={"name": "Acme Ltd"})
        interaction = await create_interaction(
            client, acme["id"], manager["id"], occurred_at=iso(now - H)
        )
        await client.delete(f"/v1/interactions/{interaction['id']}")
        complaint = await create_complaint(client, acme["id"])
        await client.post(
            f"/v1/complaints/{complaint['id']}/transitions", json={"to": "acknowledged"}
        )
        await client.post(
            "/v1/sales",
            json={
                "client_id": acme["id"],
                "amount": {"amount": "10.00", "currency": "HUF"},
                "closed_at": iso(now - H),
                "kind": "new",
            },
        )
        await create_interaction(client, other["id"], other_manager["id"], occurred_at=iso(now - H))

        response = await client.get(f"/v1/clients/{acme['id']}/history", params={"limit": 500})
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert {e["client_id"] for e in items} == {acme["id"]}
        assert [(e["resource"], e["action"]) for e in items] == [
            ("clients", "create"),
            ("assignments", "create"),
            ("clients", "update"),
            ("interactions", "create"),
            ("interactions", "delete"),
            ("complaints", "create"),
            ("complaints", "update"),
            ("sales", "create"),
        ]
        assert items[2]["changes"] == {"name": ["Acme", "Acme Ltd"]}
        seqs = [e["seq"] for e in items]
        assert seqs == sorted(seqs)

        first_page = await client.get(f"/v1/clients/{acme['id']}/history", params={"limit": 3})
        body = first_page.json()
        assert [e["seq"] for e in body["items"]] == seqs[:3]
        rest = await client.get(
            f"/v1/clients/{acme['id']}/history",
            params={"limit": 500, "cursor": body["next_cursor"]},
        )
        assert [e["seq"] for e in rest.json()["items"]] == seqs[3:]

        readers = {
            "assigned account manager": (Role.account_manager, manager["id"], 200),
            "other account manager": (Role.account_manager, other_manager["id"], 404),
            "manager id that is no manager": (Role.account_manager, str(uuid.uuid4()), 404),
            "sales manager of another team": (Role.sales_manager, str(uuid.uuid4()), 404),
            "viewer": (Role.viewer, "viewer", 200),
            "service": (Role.service, "svc", 200),
        }
        for name, (role, subject, status) in readers.items():
            with subtests.test(reader=name):
                response = await client.get(
                    f"/v1/clients/{acme['id']}/history",
                    headers=bearer(settings, role, subject=subject),
                )
                assert response.status_code == status, response.text
                if status == 404:
                    assert_problem(response, 404)

    async def test_unknown_client_is_404(self, client: AsyncClient) -> None:
        assert_problem(await client.get(f"/v1/clients/{uuid.uuid4()}/history"), 404)
