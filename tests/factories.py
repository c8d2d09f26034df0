"""Small helpers that create resources through the API and return their JSON."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def create_manager(http: AsyncClient, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": f"m-{uuid.uuid4().hex[:10]}@example.com",
        "full_name": "Test Manager",
        "role": "account_manager",
        "time_zone": "Europe/Budapest",
    }
    body.update(fields)
    response = await http.post("/v1/managers", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_client(http: AsyncClient, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"Client {uuid.uuid4().hex[:8]}",
        "segment": "enterprise",
        "country": "HU",
        "currency": "HUF",
    }
    body.update(fields)
    response = await http.post("/v1/clients", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def insert_clients(
    conn: AsyncConnection, count: int, *, prefix: str = "Bulk", ties: int = 1
) -> list[uuid.UUID]:
    """Insert ``count`` clients with one SQL statement (fast, bypasses the API); return
    their ids. ``created_at`` steps by 1 ms every ``ties`` rows, so ``ties > 1`` puts
    several rows on the same instant (the keyset's ``id`` tie-breaker then matters)."""
    result = await conn.execute(
        text(
            "INSERT INTO clients (id, name, segment, lifecycle_stage, country, currency,"
            " version, created_at, updated_at)"
            " SELECT gen_random_uuid(), :prefix || ' ' || g, 'small', 'prospect', 'HU', 'HUF',"
            " 1, t, t FROM generate_series(1, :count) AS g,"
            " LATERAL (SELECT now() - interval '1 hour'"
            " + ((g - 1) / :ties) * interval '1 millisecond' AS t) AS ts"
            " RETURNING id"
        ),
        {"prefix": prefix, "count": count, "ties": ties},
    )
    return [row[0] for row in result]


async def create_assignment(
    http: AsyncClient,
    client_id: str,
    manager_id: str,
    role: str = "primary",
    starts_at: str | None = None,
    ends_at: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Create an assignment through the API (``starts_at`` omitted = now); assert 201."""
    body: dict[str, Any] = {"client_id": client_id, "manager_id": manager_id, "role": role}
    if starts_at is not None:
        body["starts_at"] = starts_at
    if ends_at is not None:
        body["ends_at"] = ends_at
    body.update(fields)
    response = await http.post("/v1/assignments", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


# Issue 4 defaults, as the migration seeds them: (severity, first response h, resolution h).
DEFAULT_SLA = (("critical", 1, 24), ("high", 4, 72), ("medium", 24, 120), ("low", 48, 240))


async def ensure_default_sla_policies(conn: AsyncConnection) -> None:
    """Re-seed the default SLA policies inside the test's transaction when they are
    missing (the ``live_client`` fixture's TRUNCATE removes the migration's seed rows);
    a no-op while they exist. Same ids as the migration."""
    for severity, first, resolution in DEFAULT_SLA:
        await conn.execute(
            text(
                "INSERT INTO sla_policies (id, severity, segment, first_response_hours,"
                " resolution_hours, version, created_by, updated_by)"
                " VALUES (:id, :severity, NULL, :first, :resolution, 1, 'migration',"
                " 'migration') ON CONFLICT DO NOTHING"
            ),
            {
                "id": uuid.uuid5(uuid.NAMESPACE_URL, f"ams:sla:{severity}"),
                "severity": severity,
                "first": first,
                "resolution": resolution,
            },
        )


async def create_complaint(http: AsyncClient, client_id: str, **fields: Any) -> dict[str, Any]:
    """Record a complaint through the API (critical product complaint unless told); assert
    201."""
    body: dict[str, Any] = {
        "client_id": client_id,
        "title": f"Complaint {uuid.uuid4().hex[:8]}",
        "category": "product",
        "severity": "critical",
    }
    body.update(fields)
    response = await http.post("/v1/complaints", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def move_complaint(
    http: AsyncClient, complaint_id: str, to: str, **fields: Any
) -> dict[str, Any]:
    """Apply one status transition (``resolution`` filled in when moving to resolved);
    assert 201; return the transition with its ``complaint``."""
    body: dict[str, Any] = {"to": to}
    if to == "resolved":
        body["resolution"] = "Fixed."
    body.update(fields)
    response = await http.post(f"/v1/complaints/{complaint_id}/transitions", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_interaction(
    http: AsyncClient, client_id: str, manager_id: str | None, **fields: Any
) -> dict[str, Any]:
    """Log an interaction through the API (an outbound phone call now unless told);
    assert 201."""
    from datetime import UTC, datetime

    body: dict[str, Any] = {
        "client_id": client_id,
        "channel": "phone",
        "direction": "outbound",
        "occurred_at": datetime.now(UTC).isoformat(),
        "subject": "Call",
    }
    if manager_id is not None:
        body["manager_id"] = manager_id
    body.update(fields)
    response = await http.post("/v1/interactions", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def insert_client_history(
    conn: AsyncConnection,
    client_id: str,
    manager_id: str,
    *,
    interactions: int,
    complaints: int,
    start: str = "2025-01-01T00:00:00Z",
) -> None:
    """Insert ``interactions`` interactions (one an hour from ``start``) and ``complaints``
    acknowledged complaints (one every 3 hours, each with its ``open`` and ``open →
    acknowledged`` history rows) for one client, set-based (bypasses the API)."""
    params = {
        "c": client_id,
        "m": manager_id,
        "n": interactions,
        "k": complaints,
        "start": start,
    }
    await conn.execute(
        text(
            "INSERT INTO interactions (id, client_id, manager_id, channel, direction,"
            " occurred_at, subject, version)"
            " SELECT gen_random_uuid(), :c, :m, 'email', 'inbound',"
            " CAST(CAST(:start AS text) AS timestamptz) + g * interval '1 hour', 'Bulk ' || g, 1"
            " FROM generate_series(1, :n) AS g"
        ),
        params,
    )
    await conn.execute(
        text(
            "WITH made AS ("
            " INSERT INTO complaints (id, client_id, title, category, severity, received_at,"
            " status, first_responded_at, clock_since, clock_running, active_time, version)"
            " SELECT gen_random_uuid(), :c, 'Bulk ' || g, 'product', 'low', t, 'acknowledged',"
            " t + interval '1 hour', t + interval '1 hour', true, interval '1 hour', 1"
            " FROM generate_series(1, :k) AS g,"
            " LATERAL (SELECT CAST(CAST(:start AS text) AS timestamptz) + g * interval '3 hours'"
            " + interval '30 minutes' AS t) AS ts"
            " RETURNING id, client_id, received_at)"
            " INSERT INTO complaint_transitions (id, complaint_id, client_id, from_status,"
            " to_status, at, actor)"
            " SELECT gen_random_uuid(), id, client_id, NULL, 'open', received_at, 'bulk'"
            " FROM made UNION ALL"
            " SELECT gen_random_uuid(), id, client_id, 'open', 'acknowledged',"
            " received_at + interval '1 hour', 'bulk' FROM made"
        ),
        params,
    )


# --- Rules module ---------------------------------------------------------------------


async def create_sale(
    http: AsyncClient,
    client_id: str,
    amount: str,
    currency: str,
    closed_at: str,
    kind: str = "new",
    **fields: Any,
) -> dict[str, Any]:
    """Record a sale through the API (credited to the manager responsible at ``closed_at``
    unless ``credited_manager_id`` is given); assert 201."""
    body: dict[str, Any] = {
        "client_id": client_id,
        "amount": {"amount": amount, "currency": currency},
        "closed_at": closed_at,
        "kind": kind,
    }
    body.update(fields)
    response = await http.post("/v1/sales", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_quota(
    http: AsyncClient,
    manager_id: str,
    period_start: str,
    period_end: str,
    amount: str = "1000.00",
    currency: str = "EUR",
    **fields: Any,
) -> dict[str, Any]:
    """Set a ``sales_amount`` quota over ``[period_start, period_end)`` (pass ``metric``,
    ``target=None`` and ``target_count`` for an interaction quota); assert 201."""
    body: dict[str, Any] = {
        "manager_id": manager_id,
        "metric": "sales_amount",
        "period_start": period_start,
        "period_end": period_end,
        "target": {"amount": amount, "currency": currency},
    }
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    response = await http.post("/v1/quotas", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def run_rules(http: AsyncClient, as_of: str | None = None) -> dict[str, Any]:
    """Run every enabled rule at ``as_of`` (default now); assert 201; return the run."""
    body: dict[str, Any] = {} if as_of is None else {"as_of": as_of}
    response = await http.post("/v1/rule-runs", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def list_flags(http: AsyncClient, **filters: Any) -> list[dict[str, Any]]:
    """Every flag matching ``filters`` (``GET /v1/flags``, one page of up to 500)."""
    response = await http.get("/v1/flags", params={"limit": 500, **filters})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None, "more than one page of flags"
    return list(body["items"])


async def move_flag(http: AsyncClient, flag_id: str, to: str, **fields: Any) -> dict[str, Any]:
    """Apply one flag transition; assert 201; return the flag."""
    response = await http.post(f"/v1/flags/{flag_id}/transitions", json={"to": to, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def count_rows(conn: AsyncConnection, *tables: str) -> dict[str, int]:
    """``count(*)`` of each table (names are trusted test constants)."""
    counts = {}
    for table in tables:
        counts[table] = int(
            (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
        )
    return counts
