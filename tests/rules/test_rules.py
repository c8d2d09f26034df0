"""Each rule of the catalogue (DESIGN §4, issue 6 item 7): a case that raises, one that
does not, and one exactly at its threshold (thresholds are exclusive: exactly at the
threshold does not flag).

Interactions, complaints and sales are backfilled by the admin with past timestamps and
runs take an explicit ``as_of``, so every comparison is at an exact instant. A run
evaluates every rule over every client; each test looks only at the flags of the rule
and subject it is about. Every test runs in the ``client`` fixture's rolled-back
transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from app.config import Settings
from tests.factories import (
    create_assignment,
    create_client,
    create_complaint,
    create_interaction,
    create_manager,
    create_quota,
    create_sale,
    list_flags,
    move_complaint,
    run_rules,
)

S = timedelta(seconds=1)
D = timedelta(days=1)
H = timedelta(hours=1)


def iso(value: datetime) -> str:
    return value.isoformat()


def past(days: float) -> datetime:
    """``days`` before now, whole seconds (so sums of timedeltas stay exact)."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(days=days)


async def flags_of(http: AsyncClient, rule: str, subject_id: str) -> list[dict[str, Any]]:
    """The unresolved flags of ``rule`` about ``subject_id``."""
    return [
        f
        for f in await list_flags(http, rule=rule)
        if f["subject_id"] == subject_id and f["status"] != "resolved"
    ]


async def flagged(http: AsyncClient, rule: str, subject_id: str, as_of: datetime) -> bool:
    """Run every rule at ``as_of``; whether ``rule`` now holds an unresolved flag about
    ``subject_id`` (at most one may exist)."""
    await run_rules(http, iso(as_of))
    found = await flags_of(http, rule, subject_id)
    assert len(found) <= 1, found
    return bool(found)


async def active_client(http: AsyncClient, **fields: Any) -> dict[str, Any]:
    return await create_client(http, **{"lifecycle_stage": "active", **fields})


async def contact(
    http: AsyncClient, client_id: str, manager_id: str, at: datetime, **fields: Any
) -> dict[str, Any]:
    return await create_interaction(http, client_id, manager_id, occurred_at=iso(at), **fields)


class TestNoRecentContact:
    RULE = "no_recent_contact"

    async def test_raises_after_the_segment_threshold_with_evidence(
        self, client: AsyncClient
    ) -> None:
        anna = await create_manager(client)
        acme = await active_client(client, segment="key")
        last = past(100)
        await contact(client, acme["id"], anna["id"], last)
        assert await flagged(client, self.RULE, acme["id"], last + 30 * D + S)
        (flag,) = await flags_of(client, self.RULE, acme["id"])
        assert flag["severity"] == "medium"
        assert flag["subject_type"] == "client"
        assert flag["client_id"] == acme["id"]
        evidence = flag["evidence"]
        assert evidence["threshold_days"] == 30
        assert evidence["segment"] == "key"
        assert float(evidence["days_since_contact"]) == 30.0
        assert datetime.fromisoformat(evidence["last_interaction_at"]) == last
        assert evidence["rule"] == self.RULE
        assert evidence["rule_version"] == 1

    async def test_exactly_at_the_threshold_does_not_flag(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await active_client(client, segment="key")
        last = past(100)
        await contact(client, acme["id"], anna["id"], last)
        assert not await flagged(client, self.RULE, acme["id"], last + 30 * D)

    async def test_recent_contact_does_not_flag(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await active_client(client, segment="strategic")
        last = past(100)
        await contact(client, acme["id"], anna["id"], last)
        assert not await flagged(client, self.RULE, acme["id"], last + 10 * D)

    async def test_threshold_depends_on_the_segment(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        last = past(200)
        by_segment = {}
        for segment in ("strategic", "key", "enterprise", "mid_market", "small"):
            c = await active_client(client, segment=segment)
            await contact(client, c["id"], anna["id"], last)
            by_segment[segment] = c["id"]

        async def flagged_segments(as_of: datetime) -> set[str]:
            await run_rules(client, iso(as_of))
            ids = {f["client_id"] for f in await list_flags(client, rule=self.RULE)}
            return {s for s, cid in by_segment.items() if cid in ids}

        assert await flagged_segments(last + 45 * D) == {"strategic", "key"}
        assert await flagged_segments(last + 45 * D + S) == {"strategic", "key", "enterprise"}
        assert await flagged_segments(last + 90 * D) == {"strategic", "key", "enterprise"}
        assert await flagged_segments(last + 90 * D + S) == set(by_segment)

    async def test_without_interactions_counts_from_created_at(self, client: AsyncClient) -> None:
        acme = await active_client(client, segment="key")
        created = datetime.fromisoformat(acme["created_at"])
        assert not await flagged(client, self.RULE, acme["id"], created + 30 * D)
        assert await flagged(client, self.RULE, acme["id"], created + 30 * D + S)
        (flag,) = await flags_of(client, self.RULE, acme["id"])
        assert flag["evidence"]["last_interaction_at"] is None

    async def test_interactions_after_as_of_are_ignored(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await active_client(client, segment="key")
        last = past(100)
        await contact(client, acme["id"], anna["id"], last)
        await contact(client, acme["id"], anna["id"], last + 31 * D)
        assert await flagged(client, self.RULE, acme["id"], last + 30 * D + S)

    async def test_only_onboarding_or_active_unarchived_clients(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        last = past(100)
        clients = {
            stage: await create_client(client, segment="key", lifecycle_stage=stage)
            for stage in ("prospect", "onboarding", "active", "churned")
        }
        archived = await active_client(client, segment="key")
        for c in [*clients.values(), archived]:
            await contact(client, c["id"], anna["id"], last)
        r = await client.post(f"/v1/clients/{archived['id']}/archive")
        assert r.status_code == 200, r.text
        await run_rules(client, iso(last + 60 * D))
        ids = {f["client_id"] for f in await list_flags(client, rule=self.RULE)}
        assert clients["onboarding"]["id"] in ids
        assert clients["active"]["id"] in ids
        assert clients["prospect"]["id"] not in ids
        assert clients["churned"]["id"] not in ids
        assert archived["id"] not in ids


class TestUnassigned:
    RULE = "unassigned"

    async def test_raises_for_an_active_client_without_a_manager(self, client: AsyncClient) -> None:
        acme = await active_client(client)
        assert await flagged(client, self.RULE, acme["id"], past(0))
        (flag,) = await flags_of(client, self.RULE, acme["id"])
        assert flag["severity"] == "high"
        assert flag["evidence"]["responsible_manager"] is None

    async def test_primary_or_cover_does_not_flag(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        with_primary = await active_client(client)
        with_cover = await active_client(client)
        start = iso(past(10))
        await create_assignment(client, with_primary["id"], anna["id"], "primary", start)
        await create_assignment(client, with_cover["id"], anna["id"], "cover", start)
        await run_rules(client, iso(past(1)))
        assert await flags_of(client, self.RULE, with_primary["id"]) == []
        assert await flags_of(client, self.RULE, with_cover["id"]) == []

    async def test_a_secondary_alone_is_not_responsible(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await active_client(client)
        await create_assignment(client, acme["id"], anna["id"], "secondary", iso(past(10)))
        assert await flagged(client, self.RULE, acme["id"], past(1))

    async def test_exactly_at_the_assignment_start_does_not_flag(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await active_client(client)
        start = past(10)
        await create_assignment(client, acme["id"], anna["id"], "primary", iso(start))
        assert not await flagged(client, self.RULE, acme["id"], start)
        assert await flagged(client, self.RULE, acme["id"], start - S)

    async def test_assignment_periods_are_half_open(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await active_client(client)
        start, end = past(20), past(10)
        await create_assignment(client, acme["id"], anna["id"], "primary", iso(start), iso(end))
        assert not await flagged(client, self.RULE, acme["id"], end - S)
        assert await flagged(client, self.RULE, acme["id"], end)


class TestOpenComplaints:
    RULE = "open_complaints"

    async def test_two_open_complaints_raise(self, client: AsyncClient) -> None:
        acme = await active_client(client)
        for _ in range(2):
            await create_complaint(client, acme["id"], severity="low", received_at=iso(past(2)))
        assert await flagged(client, self.RULE, acme["id"], past(1))
        (flag,) = await flags_of(client, self.RULE, acme["id"])
        assert flag["severity"] == "high"
        evidence = flag["evidence"]
        assert evidence["open_complaints"] == 2
        assert evidence["open_critical"] == 0
        assert evidence["min_open"] == 2

    async def test_one_open_complaint_is_below_the_threshold(self, client: AsyncClient) -> None:
        acme = await active_client(client)
        await create_complaint(client, acme["id"], severity="high", received_at=iso(past(2)))
        assert not await flagged(client, self.RULE, acme["id"], past(1))

    async def test_one_open_critical_complaint_raises(self, client: AsyncClient) -> None:
        acme = await active_client(client)
        await create_complaint(client, acme["id"], severity="critical", received_at=iso(past(2)))
        assert await flagged(client, self.RULE, acme["id"], past(1))
        (flag,) = await flags_of(client, self.RULE, acme["id"])
        assert flag["evidence"]["open_critical"] == 1

    async def test_resolved_and_closed_complaints_do_not_count(self, client: AsyncClient) -> None:
        acme = await active_client(client)
        received = past(3)
        complaints = [
            await create_complaint(client, acme["id"], severity=s, received_at=iso(received))
            for s in ("low", "critical", "low")
        ]
        for c in complaints[1:]:
            await move_complaint(client, c["id"], "acknowledged", at=iso(received + H))
            await move_complaint(client, c["id"], "in_progress", at=iso(received + 2 * H))
            await move_complaint(client, c["id"], "resolved", at=iso(received + 3 * H))
        await move_complaint(client, complaints[2]["id"], "closed", at=iso(received + 4 * H))
        assert not await flagged(client, self.RULE, acme["id"], past(1))

    async def test_complaints_resolved_after_as_of_still_count(self, client: AsyncClient) -> None:
        """The rule holds *at* ``as_of``: a critical complaint that was open then (it was
        resolved only later) makes a run at that past ``as_of`` flag."""
        acme = await active_client(client)
        received = past(20)
        c = await create_complaint(
            client, acme["id"], severity="critical", received_at=iso(received)
        )
        await move_complaint(client, c["id"], "acknowledged", at=iso(received + H))
        await move_complaint(client, c["id"], "in_progress", at=iso(received + 2 * H))
        await move_complaint(client, c["id"], "resolved", at=iso(received + 10 * D))
        assert await flagged(client, self.RULE, acme["id"], received + 5 * D)
        assert not await flagged(client, self.RULE, acme["id"], received + 11 * D)

    async def test_complaints_received_after_as_of_do_not_count(self, client: AsyncClient) -> None:
        acme = await active_client(client)
        received = past(5)
        await create_complaint(client, acme["id"], severity="critical", received_at=iso(received))
        assert not await flagged(client, self.RULE, acme["id"], received - S)
        assert await flagged(client, self.RULE, acme["id"], received)


class TestComplaintSlaBreached:
    RULE = "complaint_sla_breached"

    async def test_raises_past_the_resolution_target(self, client: AsyncClient) -> None:
        acme = await active_client(client)
        received = past(30)
        complaint = await create_complaint(
            client, acme["id"], severity="low", received_at=iso(received)
        )
        assert await flagged(client, self.RULE, acme["id"], received + 250 * H)
        (flag,) = await flags_of(client, self.RULE, acme["id"])
        assert flag["severity"] == "high"
        evidence = flag["evidence"]
        assert evidence["breached_complaints"] == 1
        assert evidence["complaint_ids"] == [complaint["id"]]
        assert float(evidence["worst_overdue_hours"]) == 10.0

    async def test_exactly_at_the_target_does_not_flag(self, client: AsyncClient) -> None:
        acme = await active_client(client)
        received = past(30)
        await create_complaint(client, acme["id"], severity="low", received_at=iso(received))
        assert not await flagged(client, self.RULE, acme["id"], received + 240 * H)
        assert await flagged(client, self.RULE, acme["id"], received + 240 * H + S)

    async def test_within_the_target_does_not_flag(self, client: AsyncClient) -> None:
        acme = await active_client(client)
        received = past(30)
        await create_complaint(client, acme["id"], severity="critical", received_at=iso(received))
        assert not await flagged(client, self.RULE, acme["id"], received + 23 * H)

    async def test_clock_paused_while_waiting_on_client(self, client: AsyncClient) -> None:
        acme = await active_client(client)
        received = past(30)
        c = await create_complaint(client, acme["id"], severity="low", received_at=iso(received))
        await move_complaint(client, c["id"], "acknowledged", at=iso(received + H))
        await move_complaint(client, c["id"], "in_progress", at=iso(received + 2 * H))
        await move_complaint(client, c["id"], "waiting_on_client", at=iso(received + 100 * H))
        assert not await flagged(client, self.RULE, acme["id"], received + 300 * H)

    async def test_resolved_complaints_do_not_flag(self, client: AsyncClient) -> None:
        acme = await active_client(client)
        received = past(30)
        c = await create_complaint(client, acme["id"], severity="low", received_at=iso(received))
        await move_complaint(client, c["id"], "acknowledged", at=iso(received + H))
        await move_complaint(client, c["id"], "in_progress", at=iso(received + 2 * H))
        await move_complaint(client, c["id"], "resolved", at=iso(received + 300 * H))
        assert not await flagged(client, self.RULE, acme["id"], received + 400 * H)

    async def test_running_time_is_measured_at_as_of(self, client: AsyncClient) -> None:
        """A run at a past ``as_of`` measures the running time up to ``as_of``, not the
        time accumulated later: 200 h at ``as_of`` is within the 240 h target even though
        the clock later reached 250 h before it paused."""
        acme = await active_client(client)
        received = past(30)
        c = await create_complaint(client, acme["id"], severity="low", received_at=iso(received))
        await move_complaint(client, c["id"], "acknowledged", at=iso(received + H))
        await move_complaint(client, c["id"], "in_progress", at=iso(received + 2 * H))
        await move_complaint(client, c["id"], "waiting_on_client", at=iso(received + 250 * H))
        assert not await flagged(client, self.RULE, acme["id"], received + 200 * H)

    async def test_segment_policy_overrides_the_default(self, client: AsyncClient) -> None:
        key = await active_client(client, segment="key")
        other = await active_client(client, segment="enterprise")
        r = await client.post(
            "/v1/sla-policies",
            json={
                "severity": "low",
                "segment": "key",
                "first_response_hours": 1,
                "resolution_hours": 10,
            },
        )
        assert r.status_code == 201, r.text
        received = past(30)
        for c in (key, other):
            await create_complaint(client, c["id"], severity="low", received_at=iso(received))
        await run_rules(client, iso(received + 10 * H + S))
        assert len(await flags_of(client, self.RULE, key["id"])) == 1
        assert await flags_of(client, self.RULE, other["id"]) == []


class TestNegativeSentiment:
    RULE = "negative_sentiment"

    async def log(self, http: AsyncClient, sentiments: list[str | None]) -> tuple[str, datetime]:
        """A client with one interaction a day in this order (oldest first); returns the
        client id and the time of the last one."""
        anna = await create_manager(http)
        acme = await active_client(http)
        start = past(50)
        for n, sentiment in enumerate(sentiments):
            await contact(http, acme["id"], anna["id"], start + n * D, sentiment=sentiment)
        return acme["id"], start + (len(sentiments) - 1) * D

    async def test_two_of_the_last_three_negative_raise(self, client: AsyncClient) -> None:
        acme, last = await self.log(client, ["positive", "negative", "positive", "negative"])
        assert await flagged(client, self.RULE, acme, last + H)
        (flag,) = await flags_of(client, self.RULE, acme)
        assert flag["severity"] == "medium"
        evidence = flag["evidence"]
        assert (evidence["negative"], evidence["of_last"]) == (2, 3)
        assert (evidence["window"], evidence["min_negative"]) == (3, 2)

    async def test_one_negative_of_the_last_three_does_not_flag(self, client: AsyncClient) -> None:
        acme, last = await self.log(client, ["negative", "neutral", None])
        assert not await flagged(client, self.RULE, acme, last + H)

    async def test_negatives_outside_the_window_do_not_count(self, client: AsyncClient) -> None:
        acme, last = await self.log(
            client, ["negative", "negative", "negative", "negative", "positive", "positive"]
        )
        # The last three are negative, positive, positive: one negative.
        assert not await flagged(client, self.RULE, acme, last + H)
        # As of just before the fifth, the last three were all negative.
        assert await flagged(client, self.RULE, acme, last - D - H)


class TestOverdueFollowUp:
    RULE = "overdue_follow_up"

    async def with_step(self, http: AsyncClient, due: datetime, done: bool = False) -> str:
        anna = await create_manager(http)
        acme = await active_client(http)
        step = {"description": "Send the offer", "due_at": iso(due), "done": done}
        await contact(http, acme["id"], anna["id"], due - D, next_step=step)
        return str(acme["id"])

    async def test_raises_more_than_seven_days_past_due(self, client: AsyncClient) -> None:
        due = past(40)
        acme = await self.with_step(client, due)
        assert await flagged(client, self.RULE, acme, due + 8 * D)
        (flag,) = await flags_of(client, self.RULE, acme)
        assert flag["severity"] == "low"
        evidence = flag["evidence"]
        assert evidence["overdue_next_steps"] == 1
        assert evidence["threshold_days"] == 7
        assert float(evidence["days_overdue"]) == 8.0

    async def test_exactly_seven_days_past_due_does_not_flag(self, client: AsyncClient) -> None:
        due = past(40)
        acme = await self.with_step(client, due)
        assert not await flagged(client, self.RULE, acme, due + 7 * D)
        assert await flagged(client, self.RULE, acme, due + 7 * D + S)

    async def test_done_steps_do_not_flag(self, client: AsyncClient) -> None:
        due = past(40)
        acme = await self.with_step(client, due, done=True)
        assert not await flagged(client, self.RULE, acme, due + 30 * D)


class TestRenewalAtRisk:
    RULE = "renewal_at_risk"

    @staticmethod
    def noon() -> datetime:
        """A past as_of at 12:00 UTC (the organisation's time zone in tests), so its local
        date is unambiguous."""
        return past(5).replace(hour=12, minute=0, second=0)

    async def renewing(
        self, http: AsyncClient, as_of: datetime, in_days: int | None, last_contact: datetime
    ) -> str:
        anna = await create_manager(http)
        renewal = None if in_days is None else (as_of.date() + timedelta(days=in_days)).isoformat()
        acme = await active_client(http, renewal_date=renewal)
        await contact(http, acme["id"], anna["id"], last_contact)
        return str(acme["id"])

    async def test_renewal_soon_without_recent_contact_raises(self, client: AsyncClient) -> None:
        as_of = self.noon()
        acme = await self.renewing(client, as_of, 30, as_of - 30 * D - S)
        assert await flagged(client, self.RULE, acme, as_of)
        (flag,) = await flags_of(client, self.RULE, acme)
        assert flag["severity"] == "high"
        evidence = flag["evidence"]
        assert evidence["days_to_renewal"] == 30
        assert evidence["within_days"] == 60
        assert evidence["no_contact_days"] == 30
        assert evidence["open_complaints"] == 0

    async def test_contact_exactly_30_days_ago_does_not_flag(self, client: AsyncClient) -> None:
        as_of = self.noon()
        acme = await self.renewing(client, as_of, 30, as_of - 30 * D)
        assert not await flagged(client, self.RULE, acme, as_of)

    async def test_renewal_soon_with_an_open_complaint_raises(self, client: AsyncClient) -> None:
        as_of = self.noon()
        acme = await self.renewing(client, as_of, 10, as_of - D)
        assert not await flagged(client, self.RULE, acme, as_of)
        await create_complaint(client, acme, severity="low", received_at=iso(as_of - H))
        assert await flagged(client, self.RULE, acme, as_of)

    async def test_renewal_window_is_60_days_from_the_local_date(self, client: AsyncClient) -> None:
        as_of = self.noon()
        old = as_of - 40 * D
        on_60 = await self.renewing(client, as_of, 60, old)
        on_61 = await self.renewing(client, as_of, 61, old)
        today = await self.renewing(client, as_of, 0, old)
        yesterday = await self.renewing(client, as_of, -1, old)
        no_date = await self.renewing(client, as_of, None, old)
        # "Within 60 days" includes day 60 (README/DESIGN wording; the exclusive threshold
        # of this rule is the no-contact one, tested above).
        await run_rules(client, iso(as_of))
        ids = {f["client_id"] for f in await list_flags(client, rule=self.RULE)}
        assert on_60 in ids
        assert today in ids
        assert on_61 not in ids
        assert yesterday not in ids
        assert no_date not in ids

    async def test_window_counts_from_the_local_date_of_as_of(
        self, client: AsyncClient, app: FastAPI, settings: Settings
    ) -> None:
        """23:30 UTC is already the next day in Budapest: a renewal 61 UTC days ahead is
        60 local days ahead, inside the window."""
        as_of = past(5).replace(hour=23, minute=30, second=0)
        acme = await self.renewing(client, as_of, 61, as_of - 40 * D)
        assert not await flagged(client, self.RULE, acme, as_of)
        org = settings.org.model_copy(update={"time_zone": "Europe/Budapest"})
        app.state.settings = settings.model_copy(update={"org": org})
        try:
            assert await flagged(client, self.RULE, acme, as_of)
        finally:
            app.state.settings = settings
        (flag,) = await flags_of(client, self.RULE, acme)
        assert flag["evidence"]["days_to_renewal"] == 60


class TestRevenueDecline:
    RULE = "revenue_decline"

    async def selling(
        self, http: AsyncClient, as_of: datetime, sales: list[tuple[str, timedelta]], **fields: Any
    ) -> str:
        """A EUR client with ``(amount, how long before as_of)`` sales (EUR unless a
        ``currency`` is given)."""
        anna = await create_manager(http)
        acme = await active_client(http, currency="EUR", country="DE")
        currency = fields.get("currency", "EUR")
        for amount, before in sales:
            await create_sale(
                http,
                acme["id"],
                amount,
                currency,
                iso(as_of - before),
                credited_manager_id=anna["id"],
            )
        return str(acme["id"])

    async def test_recent_below_half_of_previous_raises(self, client: AsyncClient) -> None:
        as_of = past(1)
        acme = await self.selling(client, as_of, [("1000.00", 120 * D), ("499.99", 30 * D)])
        assert await flagged(client, self.RULE, acme, as_of)
        (flag,) = await flags_of(client, self.RULE, acme)
        assert flag["severity"] == "medium"
        evidence = flag["evidence"]
        # Money as the API writes it (DESIGN §3): decimal strings in the client's currency.
        assert evidence["recent"] == {"amount": "499.99", "currency": "EUR"}
        assert evidence["previous"] == {"amount": "1000.00", "currency": "EUR"}
        assert evidence["currency"] == "EUR"
        assert evidence["window_days"] == 90
        assert float(evidence["max_ratio"]) == 0.5
        assert evidence["min_previous"] == {"amount": "1000.00", "currency": "EUR"}

    async def test_exactly_half_does_not_flag(self, client: AsyncClient) -> None:
        as_of = past(1)
        acme = await self.selling(client, as_of, [("1000.00", 120 * D), ("500.00", 30 * D)])
        assert not await flagged(client, self.RULE, acme, as_of)

    async def test_steady_revenue_does_not_flag(self, client: AsyncClient) -> None:
        as_of = past(1)
        acme = await self.selling(client, as_of, [("1000.00", 120 * D), ("900.00", 30 * D)])
        assert not await flagged(client, self.RULE, acme, as_of)

    async def test_previous_window_must_be_material(self, client: AsyncClient) -> None:
        as_of = past(1)
        small = await self.selling(client, as_of, [("999.99", 120 * D)])
        material = await self.selling(client, as_of, [("1000.00", 120 * D)])
        await run_rules(client, iso(as_of))
        assert await flags_of(client, self.RULE, small) == []
        assert len(await flags_of(client, self.RULE, material)) == 1

    async def test_window_boundaries(self, client: AsyncClient) -> None:
        as_of = past(1)
        # A sale exactly 90 days before as_of is recent (windows are [as_of - 90 d, as_of)
        # and [as_of - 180 d, as_of - 90 d)): previous 1000, recent 500, not a decline.
        at_boundary = await self.selling(client, as_of, [("1000.00", 180 * D), ("500.00", 90 * D)])
        # Older than 180 days is outside both windows: nothing to compare.
        too_old = await self.selling(client, as_of, [("5000.00", 180 * D + S)])
        await run_rules(client, iso(as_of))
        assert await flags_of(client, self.RULE, at_boundary) == []
        assert await flags_of(client, self.RULE, too_old) == []

    async def test_other_currencies_are_converted(self, client: AsyncClient) -> None:
        as_of = past(1)
        r = await client.post(
            "/v1/fx-rates",
            json={"base": "EUR", "quote": "HUF", "rate": "400", "valid_on": "2000-01-01"},
        )
        assert r.status_code == 201, r.text
        # 399 600 HUF = 999 EUR (not material); 400 000 HUF = 1000 EUR (material).
        small = await self.selling(client, as_of, [("399600.00", 120 * D)], currency="HUF")
        material = await self.selling(client, as_of, [("400000.00", 120 * D)], currency="HUF")
        await run_rules(client, iso(as_of))
        assert await flags_of(client, self.RULE, small) == []
        (flag,) = await flags_of(client, self.RULE, material)
        assert flag["evidence"]["previous"] == {"amount": "1000.00", "currency": "EUR"}
        assert flag["evidence"]["currency"] == "EUR"


async def quota_with_sales(
    http: AsyncClient, start: datetime, end: datetime, sales: list[tuple[str, datetime]]
) -> dict[str, Any]:
    """A new manager's 1000 EUR sales quota over ``[start, end)`` with these sales
    credited to them."""
    anna = await create_manager(http)
    acme = await active_client(http, currency="EUR", country="DE")
    quota = await create_quota(http, anna["id"], iso(start), iso(end))
    for amount, closed_at in sales:
        await create_sale(
            http, acme["id"], amount, "EUR", iso(closed_at), credited_manager_id=anna["id"]
        )
    return quota


class TestQuotaBehindPace:
    RULE = "quota_behind_pace"

    async def test_behind_pace_raises_with_evidence(self, client: AsyncClient) -> None:
        start = past(60)
        quota = await quota_with_sales(client, start, start + 100 * D, [("399.99", start + D)])
        assert await flagged(client, self.RULE, quota["id"], start + 50 * D)
        (flag,) = await flags_of(client, self.RULE, quota["id"])
        assert flag["severity"] == "medium"
        assert flag["subject_type"] == "quota"
        assert flag["quota_id"] == quota["id"]
        assert flag["manager_id"] == quota["manager_id"]
        assert flag["client_id"] is None
        evidence = flag["evidence"]
        assert float(evidence["elapsed_share"]) == 0.5
        assert float(evidence["expected_attainment"]) == 0.4
        currency = quota["target"]["currency"]
        assert evidence["achieved"] == {"amount": "399.99", "currency": currency}
        assert evidence["target"] == {"amount": "1000.00", "currency": currency}
        assert float(evidence["pace_ratio"]) == 0.8

    async def test_exactly_on_the_pace_threshold_does_not_flag(self, client: AsyncClient) -> None:
        start = past(60)
        quota = await quota_with_sales(client, start, start + 100 * D, [("400.00", start + D)])
        assert not await flagged(client, self.RULE, quota["id"], start + 50 * D)

    async def test_ahead_of_pace_does_not_flag(self, client: AsyncClient) -> None:
        start = past(60)
        quota = await quota_with_sales(client, start, start + 100 * D, [("600.00", start + D)])
        assert not await flagged(client, self.RULE, quota["id"], start + 50 * D)

    async def test_interaction_count_quota(self, client: AsyncClient) -> None:
        start = past(60)
        anna = await create_manager(client)
        acme = await active_client(client)
        quota = await create_quota(
            client,
            anna["id"],
            iso(start),
            iso(start + 100 * D),
            metric="interaction_count",
            target=None,
            target_count=10,
        )
        for n in range(3):
            await contact(client, acme["id"], anna["id"], start + (n + 1) * D)
        # 3 of 10 at half-time: 0.3 < 0.8 × 0.5.
        assert await flagged(client, self.RULE, quota["id"], start + 50 * D)
        (flag,) = await flags_of(client, self.RULE, quota["id"])
        # Counts stay numbers.
        assert (flag["evidence"]["achieved"], flag["evidence"]["target"]) == (3, 10)
        # 4 of 10 is exactly on the threshold: the next run resolves the flag.
        await contact(client, acme["id"], anna["id"], start + 4 * D)
        assert not await flagged(client, self.RULE, quota["id"], start + 50 * D)

    async def test_only_once_a_third_of_the_period_has_passed(self, client: AsyncClient) -> None:
        start = past(60)
        quota = await quota_with_sales(client, start, start + 100 * D, [])
        assert not await flagged(client, self.RULE, quota["id"], start + 33 * D)
        # 33.33 days of 100 is an elapsed share of exactly 0.3333: the gate is reached.
        assert await flagged(client, self.RULE, quota["id"], start + timedelta(seconds=2_879_712))

    async def test_sales_after_as_of_do_not_count(self, client: AsyncClient) -> None:
        start = past(60)
        quota = await quota_with_sales(
            client, start, start + 100 * D, [("1000.00", start + 55 * D)]
        )
        assert await flagged(client, self.RULE, quota["id"], start + 50 * D)
        assert not await flagged(client, self.RULE, quota["id"], start + 56 * D)

    async def test_ended_quotas_are_not_running(self, client: AsyncClient) -> None:
        start = past(200)
        quota = await quota_with_sales(client, start, start + 100 * D, [])
        assert await flagged(client, self.RULE, quota["id"], start + 100 * D - S)
        # The next run resolves it: the quota has ended (quota_missed takes over).
        assert not await flagged(client, self.RULE, quota["id"], start + 100 * D)


class TestQuotaMissed:
    RULE = "quota_missed"

    async def test_ended_below_target_raises(self, client: AsyncClient) -> None:
        start = past(200)
        end = start + 90 * D
        quota = await quota_with_sales(client, start, end, [("999.99", start + D)])
        assert await flagged(client, self.RULE, quota["id"], end + D)
        (flag,) = await flags_of(client, self.RULE, quota["id"])
        assert flag["severity"] == "high"
        assert flag["subject_type"] == "quota"
        assert flag["manager_id"] == quota["manager_id"]
        evidence = flag["evidence"]
        currency = quota["target"]["currency"]
        assert evidence["target"] == {"amount": "1000.00", "currency": currency}
        assert evidence["achieved"] == {"amount": "999.99", "currency": currency}
        assert evidence["lookback_days"] == 120

    async def test_exactly_on_target_does_not_flag(self, client: AsyncClient) -> None:
        start = past(200)
        end = start + 90 * D
        quota = await quota_with_sales(client, start, end, [("1000.00", start + D)])
        assert not await flagged(client, self.RULE, quota["id"], end + D)

    async def test_raised_from_the_end_of_the_period(self, client: AsyncClient) -> None:
        start = past(200)
        end = start + 90 * D
        quota = await quota_with_sales(client, start, end, [])
        assert not await flagged(client, self.RULE, quota["id"], end - S)
        assert await flagged(client, self.RULE, quota["id"], end)

    async def test_only_within_the_lookback(self, client: AsyncClient) -> None:
        start = past(200)
        end = start + 90 * D
        quota = await quota_with_sales(client, start, end, [])
        assert await flagged(client, self.RULE, quota["id"], end + 120 * D - S)
        # Ended exactly 120 days before as_of: no longer "within 120 days".
        assert not await flagged(client, self.RULE, quota["id"], end + 120 * D)

    async def test_sales_after_the_period_do_not_count(self, client: AsyncClient) -> None:
        start = past(200)
        end = start + 90 * D
        quota = await quota_with_sales(client, start, end, [("1000.00", end)])
        assert await flagged(client, self.RULE, quota["id"], end + D)


class TestQuotaMissedRepeatedly:
    RULE = "quota_missed_repeatedly"

    async def quarters(
        self, http: AsyncClient, achieved: list[str | None], start: datetime
    ) -> tuple[str, list[str]]:
        """A manager with consecutive 30-day 1000 EUR quotas from ``start``, each with a
        sale of the given amount (None: no sale); returns the manager and quota ids."""
        anna = await create_manager(http)
        acme = await active_client(http, currency="EUR", country="DE")
        ids = []
        for n, amount in enumerate(achieved):
            s, e = start + n * 30 * D, start + (n + 1) * 30 * D
            ids.append((await create_quota(http, anna["id"], iso(s), iso(e)))["id"])
            if amount is not None:
                await create_sale(
                    http, acme["id"], amount, "EUR", iso(s + D), credited_manager_id=anna["id"]
                )
        return str(anna["id"]), ids

    async def test_two_consecutive_misses_raise(self, client: AsyncClient) -> None:
        start = past(100)
        anna, (q1, q2) = await self.quarters(client, [None, "999.99"], start)
        assert await flagged(client, self.RULE, anna, start + 60 * D)
        (flag,) = await flags_of(client, self.RULE, anna)
        assert flag["severity"] == "critical"
        assert flag["subject_type"] == "manager"
        assert flag["manager_id"] == anna
        assert flag["client_id"] is None
        assert flag["quota_id"] is None
        assert flag["evidence"]["consecutive"] == 2
        assert flag["evidence"]["missed"] == {"sales_amount": [q2, q1]}

    async def test_one_miss_is_below_the_threshold(self, client: AsyncClient) -> None:
        start = past(100)
        anna, _ = await self.quarters(client, ["1000.00", None], start)
        assert not await flagged(client, self.RULE, anna, start + 60 * D)

    async def test_only_ended_quotas_count(self, client: AsyncClient) -> None:
        start = past(100)
        anna, _ = await self.quarters(client, [None, None], start)
        assert not await flagged(client, self.RULE, anna, start + 60 * D - S)
        assert await flagged(client, self.RULE, anna, start + 60 * D)

    async def test_a_met_quota_ends_the_streak(self, client: AsyncClient) -> None:
        start = past(100)
        anna, _ = await self.quarters(client, [None, None, "1000.00"], start)
        assert await flagged(client, self.RULE, anna, start + 60 * D)
        assert not await flagged(client, self.RULE, anna, start + 90 * D)

    async def test_misses_of_different_metrics_are_not_consecutive(
        self, client: AsyncClient
    ) -> None:
        start = past(100)
        anna = await create_manager(client)
        await create_quota(client, anna["id"], iso(start), iso(start + 30 * D))
        await create_quota(
            client,
            anna["id"],
            iso(start + 30 * D),
            iso(start + 60 * D),
            metric="interaction_count",
            target=None,
            target_count=5,
        )
        assert not await flagged(client, self.RULE, anna["id"], start + 60 * D)
        # Each quota on its own was missed.
        missed = [f for f in await list_flags(client, rule="quota_missed")]
        assert sum(f["manager_id"] == anna["id"] for f in missed) == 2
