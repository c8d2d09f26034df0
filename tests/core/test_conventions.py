"""Conventions every resource follows (DESIGN §3), exercised through /v1/clients and
/v1/managers: cursor pagination, Idempotency-Key, ETag / If-Match, problem details,
request ids, health probes, metrics and a constant number of SQL statements per list."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.config import Settings
from app.core.auth import Role
from app.core.session import SessionDep
from tests.assertions import assert_invalid, assert_problem
from tests.conftest import make_token
from tests.factories import create_client, create_manager, insert_clients

CLIENT: dict[str, Any] = {"name": "Idem Kft.", "segment": "key", "country": "HU", "currency": "HUF"}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _json_cursor(value: Any) -> str:
    return _b64(json.dumps(value).encode())


TAMPERED_CURSORS: list[tuple[str, str]] = [
    ("garbage", "not a cursor"),
    ("not_base64", "!!!!"),
    ("binary", _b64(b"\xff\xfe\x00garbage")),
    ("json_number", _json_cursor(5)),
    ("json_object", _json_cursor({"a": 1})),
    ("nulls", _json_cursor([None, None])),
    ("naive", _json_cursor(["2024-01-01T00:00:00", str(uuid.uuid4())])),
    ("bad_time", _json_cursor(["yesterday", str(uuid.uuid4())])),
    ("bad_uuid", _json_cursor(["2024-01-01T00:00:00+00:00", "nope"])),
    ("uuid_number", _json_cursor(["2024-01-01T00:00:00+00:00", 5])),
    ("uuid_list", _json_cursor(["2024-01-01T00:00:00+00:00", ["x"]])),
    ("one_part", _json_cursor(["2024-01-01T00:00:00+00:00"])),
    ("three_parts", _json_cursor([1, 2, 3])),
    ("too_long", "A" * 201),
]


async def _page_all(http: AsyncClient, limit: int, **params: Any) -> list[str]:
    """Follow ``next_cursor`` to the end; return every id in the order served."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(10_000):
        query: dict[str, Any] = {"limit": limit, **params}
        if cursor:
            query["cursor"] = cursor
        response = await http.get("/v1/clients", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        ids.extend(c["id"] for c in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("pagination never ended")


async def _count_clients(engine: AsyncEngine, **where: str) -> int:
    sql = "SELECT count(*) FROM clients"
    if where:
        sql += " WHERE " + " AND ".join(f"{k} = :{k}" for k in where)
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql), where)).scalar_one())


class TestCursorPagination:
    async def test_pages_cover_every_row_once_in_key_order(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        inserted = await insert_clients(connection, 25, ties=3)
        ids = await _page_all(client, limit=10)
        assert len(ids) == 25
        assert Counter(ids) == Counter(str(i) for i in inserted)
        ordered = await connection.execute(text("SELECT id FROM clients ORDER BY created_at, id"))
        assert ids == [str(r[0]) for r in ordered]

    async def test_last_page_has_no_cursor(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        await insert_clients(connection, 20)
        first = (await client.get("/v1/clients", params={"limit": 10})).json()
        assert len(first["items"]) == 10
        assert first["next_cursor"]
        second = (
            await client.get("/v1/clients", params={"limit": 10, "cursor": first["next_cursor"]})
        ).json()
        assert len(second["items"]) == 10
        assert second["next_cursor"] is None

    async def test_default_limit_is_50(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        await insert_clients(connection, 51)
        page = (await client.get("/v1/clients")).json()
        assert len(page["items"]) == 50
        assert page["next_cursor"] is not None

    async def test_max_limit_is_500(self, client: AsyncClient, connection: AsyncConnection) -> None:
        await insert_clients(connection, 501)
        page = (await client.get("/v1/clients", params={"limit": 500})).json()
        assert len(page["items"]) == 500
        assert page["next_cursor"] is not None

    async def test_cursor_combines_with_filters(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        await insert_clients(connection, 15, prefix="Alpha")
        await insert_clients(connection, 15, prefix="Beta")
        ids = await _page_all(client, limit=4, q="alpha")
        assert len(ids) == len(set(ids)) == 15

    async def test_limit_out_of_range_is_422(
        self, client: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        for limit in ("0", "501", "-5", "1.5", "", "99999999999999999999"):
            with subtests.test(limit=limit):
                response = await client.get("/v1/clients", params={"limit": limit})
                assert_invalid(response, "query.limit")

    async def test_tampered_cursor_is_422(
        self, anon_lenient: AsyncClient, token: str, subtests: pytest.Subtests
    ) -> None:
        for kind, cursor in TAMPERED_CURSORS:
            with subtests.test(kind=kind):
                response = await anon_lenient.get(
                    "/v1/clients",
                    params={"cursor": cursor},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert_invalid(response, "query.cursor")

    async def test_paging_while_inserting_never_skips_or_repeats(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        async with engine.begin() as conn:
            originals = {str(i) for i in await insert_clients(conn, 1000, ties=4)}
        done = asyncio.Event()
        inserted_meanwhile: list[str] = []

        async def pager() -> list[str]:
            try:
                return await _page_all(live_client, limit=37)
            finally:
                done.set()

        async def inserter() -> None:
            while not done.is_set():
                inserted_meanwhile.append((await create_client(live_client))["id"])

        seen, _ = await asyncio.gather(pager(), inserter())
        counts = Counter(seen)
        assert inserted_meanwhile, "no insert overlapped the paging"
        assert not [i for i, n in counts.items() if n > 1], "an id was served twice"
        assert originals - set(seen) == set(), "an original row was skipped"
        assert set(seen) - originals <= set(inserted_meanwhile)


class TestListStatementCount:
    @contextmanager
    def _count_statements(self, engine: AsyncEngine) -> Iterator[list[str]]:
        statements: list[str] = []

        def before(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        event.listen(engine.sync_engine, "before_cursor_execute", before)
        try:
            yield statements
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", before)

    @pytest.mark.parametrize("path", ["/v1/clients", "/v1/managers"])
    async def test_constant_statements_whatever_the_page_size(
        self, client: AsyncClient, connection: AsyncConnection, engine: AsyncEngine, path: str
    ) -> None:
        if path == "/v1/clients":
            await insert_clients(connection, 60)
        else:
            for _ in range(60):
                await create_manager(client)
        counts = {}
        for limit in (5, 50):
            with self._count_statements(engine) as statements:
                response = await client.get(path, params={"limit": limit})
            assert response.status_code == 200
            assert len(response.json()["items"]) == limit
            counts[limit] = len(statements)
        assert counts[5] > 0, "the listener saw no statement"
        assert counts[5] == counts[50], counts
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 1, selects


class TestIdempotencyKey:
    async def test_retry_replays_the_first_response(self, client: AsyncClient) -> None:
        headers = {"Idempotency-Key": "retry-1"}
        first = await client.post("/v1/clients", json=CLIENT, headers=headers)
        second = await client.post("/v1/clients", json=CLIENT, headers=headers)
        assert first.status_code == second.status_code == 201
        assert "Idempotent-Replayed" not in first.headers
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.json() == first.json()
        assert second.headers["ETag"] == first.headers["ETag"]
        assert second.headers["Location"] == first.headers["Location"]
        listed = (await client.get("/v1/clients")).json()["items"]
        assert [c["id"] for c in listed] == [first.json()["id"]]

    async def test_same_key_with_another_body_is_422(self, client: AsyncClient) -> None:
        headers = {"Idempotency-Key": "retry-2"}
        first = await client.post("/v1/clients", json=CLIENT, headers=headers)
        assert first.status_code == 201
        other = dict(CLIENT, name="Something else")
        assert_invalid(
            await client.post("/v1/clients", json=other, headers=headers),
            "header.Idempotency-Key",
        )
        assert len((await client.get("/v1/clients")).json()["items"]) == 1

    async def test_same_key_on_another_endpoint_is_422(self, client: AsyncClient) -> None:
        headers = {"Idempotency-Key": "retry-3"}
        assert (await client.post("/v1/clients", json=CLIENT, headers=headers)).status_code == 201
        manager = {"email": "idem@example.com", "full_name": "Idem"}
        assert_problem(await client.post("/v1/managers", json=manager, headers=headers), 422)
        assert (await client.get("/v1/managers")).json()["items"] == []

    async def test_keys_of_different_callers_do_not_collide(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        ids = []
        for subject in ("caller-a", "caller-b"):
            token = make_token(settings, Role.admin, subject=subject)
            response = await client.post(
                "/v1/clients",
                json=CLIENT,
                headers={"Idempotency-Key": "shared-key", "Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 201
            assert "Idempotent-Replayed" not in response.headers
            ids.append(response.json()["id"])
        assert ids[0] != ids[1]
        assert len((await client.get("/v1/clients")).json()["items"]) == 2

    async def test_without_a_key_every_post_creates(self, client: AsyncClient) -> None:
        first = await client.post("/v1/clients", json=CLIENT)
        second = await client.post("/v1/clients", json=CLIENT)
        assert first.json()["id"] != second.json()["id"]

    async def test_a_failed_first_attempt_leaves_no_trace(self, client: AsyncClient) -> None:
        headers = {"Idempotency-Key": "retry-4"}
        bad = dict(CLIENT, parent_id=str(uuid.uuid4()))
        assert_invalid(
            await client.post("/v1/clients", json=bad, headers=headers), "body.parent_id"
        )
        good = await client.post("/v1/clients", json=CLIENT, headers=headers)
        assert good.status_code == 201, good.text
        assert "Idempotent-Replayed" not in good.headers

    async def test_a_conflict_is_not_remembered(self, client: AsyncClient) -> None:
        await create_client(client, external_ref="IDEM-1")
        body = dict(CLIENT, external_ref="IDEM-1")
        headers = {"Idempotency-Key": "retry-5"}
        assert_problem(await client.post("/v1/clients", json=body, headers=headers), 409)
        assert_problem(await client.post("/v1/clients", json=body, headers=headers), 409)

    async def test_managers_honour_the_key(self, client: AsyncClient) -> None:
        headers = {"Idempotency-Key": "retry-6"}
        body = {"email": "idem6@example.com", "full_name": "Idem Six"}
        first = await client.post("/v1/managers", json=body, headers=headers)
        second = await client.post("/v1/managers", json=body, headers=headers)
        assert first.status_code == second.status_code == 201
        assert second.headers["Idempotent-Replayed"] == "true"
        assert first.json()["id"] == second.json()["id"]

    async def test_bad_key_is_422(self, client: AsyncClient, subtests: pytest.Subtests) -> None:
        for key in ("", "k" * 201):
            with subtests.test(length=len(key)):
                headers = {"Idempotency-Key": key}
                assert_problem(await client.post("/v1/clients", json=CLIENT, headers=headers), 422)
        assert (await client.get("/v1/clients")).json()["items"] == []

    async def test_concurrent_retries_create_one_row(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        body = dict(CLIENT, name=f"Concurrent {uuid.uuid4().hex[:8]}")
        headers = {"Idempotency-Key": f"concurrent-{uuid.uuid4().hex}"}
        responses = await asyncio.gather(
            *(live_client.post("/v1/clients", json=body, headers=headers) for _ in range(10))
        )
        assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]
        assert len({r.json()["id"] for r in responses}) == 1
        replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
        assert replayed.count("true") == 9
        assert await _count_clients(engine, name=body["name"]) == 1


class TestETagIfMatch:
    async def test_get_sends_the_version_as_etag(self, client: AsyncClient) -> None:
        created = await create_client(client)
        response = await client.get(f"/v1/clients/{created['id']}")
        assert response.headers["ETag"] == '"1"'

    async def test_patch_with_current_etag_bumps_it(self, client: AsyncClient) -> None:
        created = await create_client(client)
        url = f"/v1/clients/{created['id']}"
        response = await client.patch(url, json={"name": "Renamed"}, headers={"If-Match": '"1"'})
        assert response.status_code == 200, response.text
        assert response.headers["ETag"] == '"2"'
        assert response.json()["version"] == 2
        assert (await client.get(url)).headers["ETag"] == '"2"'

    async def test_patch_with_stale_etag_is_412_and_changes_nothing(
        self, client: AsyncClient
    ) -> None:
        created = await create_client(client)
        url = f"/v1/clients/{created['id']}"
        await client.patch(url, json={"name": "First"}, headers={"If-Match": '"1"'})
        stale = await client.patch(url, json={"name": "Second"}, headers={"If-Match": '"1"'})
        body = assert_problem(stale, 412)
        assert stale.headers["ETag"] == '"2"'
        assert body["detail"]
        after = await client.get(url)
        assert after.json()["name"] == "First"
        assert after.headers["ETag"] == '"2"'

    async def test_matching_if_match_forms(
        self, client: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        for if_match in ('"2"', 'W/"2"', "*", '"7", "2"', '"1", W/"2"'):
            with subtests.test(if_match=if_match):
                created = await create_client(client)
                url = f"/v1/clients/{created['id']}"
                await client.patch(url, json={"name": "Two"})
                headers = {"If-Match": if_match}
                response = await client.patch(url, json={"name": "Three"}, headers=headers)
                assert response.status_code == 200, response.text

    async def test_non_matching_if_match_forms(
        self, client: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        created = await create_client(client)
        url = f"/v1/clients/{created['id']}"
        await client.patch(url, json={"name": "Two"})
        for if_match in ('"1"', "1", '"3"', 'W/"1"', '"2'):
            with subtests.test(if_match=if_match):
                headers = {"If-Match": if_match}
                response = await client.patch(url, json={"name": "Three"}, headers=headers)
                assert_problem(response, 412)
        assert (await client.get(url)).json()["name"] == "Two"

    async def test_delete_with_stale_etag_is_412(self, client: AsyncClient) -> None:
        created = await create_client(client)
        url = f"/v1/clients/{created['id']}"
        await client.patch(url, json={"name": "Two"})
        assert_problem(await client.delete(url, headers={"If-Match": '"1"'}), 412)
        assert (await client.get(url)).status_code == 200

    async def test_concurrent_patches_with_one_etag_one_wins(
        self, live_client: AsyncClient
    ) -> None:
        created = await create_client(live_client)
        url = f"/v1/clients/{created['id']}"
        names = [f"Writer {i}" for i in range(10)]
        responses = await asyncio.gather(
            *(live_client.patch(url, json={"name": n}, headers={"If-Match": '"1"'}) for n in names)
        )
        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: 1, 412: 9}, [r.text for r in responses]
        for r in responses:
            if r.status_code == 412:
                assert_problem(r, 412)
        winner = next(r for r in responses if r.status_code == 200)
        after = await live_client.get(url)
        assert after.headers["ETag"] == '"2"'
        assert after.json()["name"] == winner.json()["name"]

    async def test_concurrent_pair_of_patches_one_wins(self, live_client: AsyncClient) -> None:
        for _ in range(5):
            created = await create_client(live_client)
            url = f"/v1/clients/{created['id']}"
            first, second = await asyncio.gather(
                live_client.patch(url, json={"industry": "A"}, headers={"If-Match": '"1"'}),
                live_client.patch(url, json={"industry": "B"}, headers={"If-Match": '"1"'}),
            )
            assert sorted([first.status_code, second.status_code]) == [200, 412]


def _add_failing_routes(app: FastAPI) -> None:
    async def boom() -> None:
        raise RuntimeError("SELECT password FROM secret_table WHERE user = 'root'")

    async def bad_sql(session: SessionDep) -> None:
        await session.execute(text("SELECT * FROM secret_internal_table"))

    if any(getattr(r, "path", "") == "/v1/test-boom" for r in app.routes):
        return  # the session-wide app already has them
    app.add_api_route("/v1/test-boom", boom, include_in_schema=False)
    app.add_api_route("/v1/test-bad-sql", bad_sql, include_in_schema=False)


class TestProblemDetails:
    async def test_unknown_route_is_404_problem(self, client: AsyncClient) -> None:
        assert_problem(await client.get("/v1/nothing-here"), 404)

    async def test_wrong_method_is_405_problem(self, client: AsyncClient) -> None:
        assert_problem(await client.put("/v1/clients", json={}), 405)

    async def test_validation_problem_lists_fields(self, client: AsyncClient) -> None:
        response = await client.post("/v1/clients", json={"name": ""})
        body = assert_invalid(response, "body.name")
        assert body["title"]
        assert body["instance"] == "/v1/clients"
        assert "body.name" in body["detail"]

    @pytest.mark.parametrize("path", ["/v1/test-boom", "/v1/test-bad-sql"])
    async def test_500_never_leaks_internals(
        self, app: FastAPI, anon_lenient: AsyncClient, token: str, path: str
    ) -> None:
        _add_failing_routes(app)
        response = await anon_lenient.get(path, headers={"Authorization": f"Bearer {token}"})
        body = assert_problem(response, 500)
        for secret in ("password", "secret", "RuntimeError", "Traceback", "ProgrammingError"):
            assert secret not in response.text, response.text
        assert body["detail"]

    async def test_500_still_carries_the_request_id(
        self, app: FastAPI, anon_lenient: AsyncClient
    ) -> None:
        """The request id is how a user's report of a 500 is found in the logs."""
        _add_failing_routes(app)
        request_id = uuid.uuid4().hex
        response = await anon_lenient.get("/v1/test-boom", headers={"X-Request-ID": request_id})
        assert response.status_code == 500
        assert response.headers.get("X-Request-ID") == request_id

    async def test_concurrent_duplicate_external_ref_is_409_not_500(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        body = dict(CLIENT, external_ref=f"RACE-{uuid.uuid4().hex[:8]}")
        responses = await asyncio.gather(
            *(live_client.post("/v1/clients", json=body) for _ in range(5))
        )
        assert Counter(r.status_code for r in responses) == {201: 1, 409: 4}
        for r in responses:
            if r.status_code == 409:
                assert_problem(r, 409)
        assert await _count_clients(engine, external_ref=body["external_ref"]) == 1

    async def test_concurrent_reparenting_cannot_form_a_cycle(
        self, live_client: AsyncClient
    ) -> None:
        a = await create_client(live_client)
        b = await create_client(live_client)
        first, second = await asyncio.gather(
            live_client.patch(f"/v1/clients/{a['id']}", json={"parent_id": b["id"]}),
            live_client.patch(f"/v1/clients/{b['id']}", json={"parent_id": a["id"]}),
        )
        assert sorted([first.status_code, second.status_code]) == [200, 422]
        parents = [
            (await live_client.get(f"/v1/clients/{c['id']}")).json()["parent_id"] for c in (a, b)
        ]
        assert parents.count(None) == 1


class TestRequestId:
    async def test_given_id_is_echoed(self, client: AsyncClient) -> None:
        request_id = str(uuid.uuid4())
        response = await client.get("/v1/clients", headers={"X-Request-ID": request_id})
        assert response.headers["X-Request-ID"] == request_id

    async def test_missing_id_is_generated_per_request(self, client: AsyncClient) -> None:
        first = (await client.get("/v1/clients")).headers["X-Request-ID"]
        second = (await client.get("/v1/clients")).headers["X-Request-ID"]
        assert first
        assert second
        assert first != second

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [("GET", "/v1/clients", 401), ("GET", "/nope", 404), ("GET", "/health/live", 200)],
    )
    async def test_error_and_health_responses_carry_it(
        self, anon: AsyncClient, method: str, path: str, status: int
    ) -> None:
        request_id = str(uuid.uuid4())
        response = await anon.request(method, path, headers={"X-Request-ID": request_id})
        assert response.status_code == status
        assert response.headers["X-Request-ID"] == request_id

    async def test_validation_error_carries_it(self, client: AsyncClient) -> None:
        request_id = str(uuid.uuid4())
        response = await client.post("/v1/clients", json={}, headers={"X-Request-ID": request_id})
        assert response.status_code == 422
        assert response.headers["X-Request-ID"] == request_id


class TestGetLiveness:
    async def test_is_ok_without_token(self, anon: AsyncClient) -> None:
        response = await anon.get("/health/live")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


class TestGetReadiness:
    async def test_is_ok_at_head(self, anon: AsyncClient) -> None:
        response = await anon.get("/health/ready")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_schema_behind_is_503(self, app: FastAPI, anon: AsyncClient) -> None:
        app.state.migration_heads = {"9999_future_revision"}
        assert_problem(await anon.get("/health/ready"), 503)

    async def test_database_unreachable_is_503(self, app: FastAPI, anon: AsyncClient) -> None:
        unreachable = create_async_engine(
            "postgresql+asyncpg://nobody@127.0.0.1:1/none", connect_args={"timeout": 2}
        )
        app.state.engine = unreachable
        try:
            response = await anon.get("/health/ready")
        finally:
            await unreachable.dispose()
        body = assert_problem(response, 503)
        assert "127.0.0.1" not in response.text
        assert body["detail"]


class TestMetrics:
    async def test_exposes_request_counters(self, client: AsyncClient) -> None:
        assert (await client.get("/v1/clients")).status_code == 200
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "http_requests_total" in response.text
        assert 'handler="/v1/clients"' in response.text
