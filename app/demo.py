"""A small synthetic demo organisation for an empty database (``ams serve --demo``).

Six managers (a sales manager, two team leads, three account managers) and twenty
clients with names in Hungarian, Greek, Arabic, Hebrew, Kazakh (Cyrillic) and English;
assignments (one client left unassigned, one secondary, one absence with its covers);
interactions (recent, old, negative, with overdue next steps); complaints (a critical
one open, one past its SLA, others at every stage); sales in EUR, HUF and USD with FX
rates; sales and interaction quotas for the previous and the current fiscal quarter
(some missed). Then the rules run once, so flags and health scores show at once.

Everything is written through the domain services, as an ``admin`` called ``demo``,
relative to now (so the data stays fresh whenever it is loaded) and deterministic.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import service as assignments_service
from app.assignments.models import AssignmentRole
from app.assignments.schemas import AbsenceCreate, AssignmentCreate
from app.audit.listener import AuditContext
from app.clients import service as clients_service
from app.clients.models import Client, LifecycleStage, Segment
from app.clients.schemas import ClientCreate
from app.complaints import service as complaints_service
from app.complaints.models import Category, Severity, Status
from app.complaints.schemas import ComplaintCreate, TransitionCreate
from app.config import Settings
from app.core.auth import Principal, Role
from app.core.db import create_engine, create_sessionmaker
from app.core.money import Money
from app.core.periods import PeriodKind
from app.interactions import service as interactions_service
from app.interactions.models import Channel, Direction, Sentiment
from app.interactions.schemas import InteractionCreate, NextStep
from app.managers import service as managers_service
from app.managers.models import ManagerRole
from app.managers.schemas import ManagerCreate
from app.quotas import service as quotas_service
from app.quotas.models import Metric
from app.quotas.schemas import QuotaCreate
from app.rules.engine import run_rules
from app.sales import service as sales_service
from app.sales.models import SaleKind
from app.sales.schemas import FxRateCreate, SaleCreate

ACTOR = "demo"
PRINCIPAL = Principal(subject=ACTOR, roles=frozenset({Role.admin}), manager_id=None)


@dataclass(frozen=True)
class DemoManager:
    key: str
    full_name: str
    email: str
    role: ManagerRole
    lead: str | None
    time_zone: str
    region: str


MANAGERS = (
    DemoManager(
        "eszter",
        "Kovács Eszter",
        "eszter.kovacs@demo.example",
        ManagerRole.sales_manager,
        None,
        "Europe/Budapest",
        "EMEA",
    ),
    DemoManager(
        "georgios",
        "Γεώργιος Παπαδόπουλος",
        "georgios.papadopoulos@demo.example",
        ManagerRole.team_lead,
        "eszter",
        "Europe/Athens",
        "Southern Europe & Central Asia",
    ),
    DemoManager(
        "sarah",
        "Sarah Mitchell",
        "sarah.mitchell@demo.example",
        ManagerRole.team_lead,
        "eszter",
        "Europe/London",
        "Western Europe & Middle East",
    ),
    DemoManager(
        "layla",
        "ليلى حداد",
        "layla.haddad@demo.example",
        ManagerRole.account_manager,
        "georgios",
        "Asia/Dubai",
        "Gulf",
    ),
    DemoManager(
        "aigul",
        "Айгүл Серікқызы",
        "aigul.serikkyzy@demo.example",
        ManagerRole.account_manager,
        "georgios",
        "Asia/Almaty",
        "Central Asia",
    ),
    DemoManager(
        "noa",
        "נועה לוי",
        "noa.levi@demo.example",
        ManagerRole.senior_account_manager,
        "sarah",
        "Asia/Jerusalem",
        "Levant",
    ),
)


@dataclass(frozen=True)
class DemoClient:
    """A client and its story: ``healthy`` (recent positive contact, steady sales),
    ``silent`` (last contact months ago), ``unhappy`` (negative calls), ``overdue`` (a
    follow-up not done), ``declining`` (sales dropped), ``complaining`` (complaints)."""

    name: str
    segment: Segment
    country: str
    currency: str
    owner: str | None
    story: str
    stage: LifecycleStage = LifecycleStage.active
    renewal_in_days: int | None = None


CLIENTS = (
    DemoClient("Ügyfél Kft.", Segment.key, "HU", "HUF", "eszter", "healthy", renewal_in_days=200),
    DemoClient("Dunai Gépgyár Zrt.", Segment.strategic, "HU", "HUF", "eszter", "complaining"),
    DemoClient("Tiszavirág Pékség Bt.", Segment.small, "HU", "HUF", "georgios", "overdue"),
    DemoClient("Balaton Wellness Kft.", Segment.mid_market, "HU", "EUR", None, "silent"),
    DemoClient("Αθηναϊκή Ναυτιλιακή Α.Ε.", Segment.enterprise, "GR", "EUR", "georgios", "healthy"),
    DemoClient("Όλυμπος Τρόφιμα", Segment.mid_market, "GR", "EUR", "georgios", "unhappy"),
    DemoClient("Κρήτη Ενέργεια Α.Ε.", Segment.key, "GR", "EUR", "aigul", "declining"),
    DemoClient("شركة الأمل للتجارة", Segment.key, "AE", "USD", "layla", "complaining"),
    DemoClient("مجموعة النخيل", Segment.strategic, "SA", "USD", "layla", "healthy"),
    DemoClient(
        "دار الخليج للاستشارات",
        Segment.enterprise,
        "QA",
        "USD",
        "layla",
        "silent",
        renewal_in_days=30,
    ),
    DemoClient('חברת השלום בע"מ', Segment.enterprise, "IL", "USD", "noa", "healthy"),
    DemoClient("אור טכנולוגיות", Segment.key, "IL", "USD", "noa", "unhappy"),
    DemoClient(
        "גליל חקלאות",
        Segment.small,
        "IL",
        "USD",
        "noa",
        "overdue",
        stage=LifecycleStage.onboarding,
    ),
    DemoClient("Алатау Логистика ЖШС", Segment.enterprise, "KZ", "USD", "aigul", "healthy"),
    DemoClient("Дала Агро", Segment.mid_market, "KZ", "USD", "aigul", "silent"),
    DemoClient("Қазақ Телеком Сервис", Segment.key, "KZ", "USD", "layla", "complaining"),
    DemoClient("Northwind Traders Ltd", Segment.strategic, "GB", "EUR", "sarah", "healthy"),
    DemoClient("Blue Harbour Logistics", Segment.mid_market, "IE", "EUR", "sarah", "declining"),
    DemoClient(
        "Greenfield Foods plc",
        Segment.small,
        "GB",
        "EUR",
        "sarah",
        "healthy",
        stage=LifecycleStage.prospect,
    ),
    DemoClient("Acme Analytics Inc.", Segment.enterprise, "US", "USD", "noa", "healthy"),
)

# The amount of each demo sale, by the client's currency.
SALE_AMOUNTS = {"EUR": "12500.00", "USD": "14800.00", "HUF": "4950000.00"}
# Quotas: (manager, metric, previous-quarter target, current-quarter target); sales
# targets in EUR unless a currency is given; interaction targets are counts.
QUOTAS = (
    ("layla", Metric.sales_amount, "60000.00", "60000.00", "EUR"),
    ("aigul", Metric.sales_amount, "90000.00", "95000.00", "USD"),
    ("noa", Metric.sales_amount, "40000.00", "150000.00", "EUR"),
    ("georgios", Metric.sales_amount, "20000.00", "30000.00", "EUR"),
    ("sarah", Metric.sales_amount, "30000.00", "30000.00", "EUR"),
    ("georgios", Metric.interaction_count, "12", "12", None),
    ("sarah", Metric.interaction_count, "6", "40", None),
)


async def has_clients(session: AsyncSession) -> bool:
    """Whether any client exists (the demo only fills an empty database)."""
    return (await session.execute(select(Client.id).limit(1))).first() is not None


async def seed_demo(session: AsyncSession, settings: Settings) -> bool:
    """Create the demo organisation in ``session``'s transaction (the caller commits) and
    run the rules once. Returns False, writing nothing, when a client already exists."""
    if await has_clients(session):
        return False
    session.info.setdefault("audit", AuditContext(actor=ACTOR, roles=["admin"], source="cli"))
    now = datetime.now(UTC)
    since = now - timedelta(days=400)
    calendar = quotas_service.calendar(settings)
    current = calendar.containing(now, PeriodKind.quarter)
    previous = calendar.containing(current.start - timedelta(microseconds=1), PeriodKind.quarter)

    managers: dict[str, uuid.UUID] = {}
    for m in MANAGERS:
        row = await managers_service.create_manager(
            session,
            PRINCIPAL,
            ManagerCreate(
                email=m.email,
                full_name=m.full_name,
                role=m.role,
                reports_to_id=managers[m.lead] if m.lead else None,
                time_zone=m.time_zone,
                region=m.region,
            ),
        )
        managers[m.key] = row.id

    for base, quote, old, new in (
        ("EUR", "HUF", "391.20", "402.75"),
        ("EUR", "USD", "1.0830", "1.0615"),
    ):
        for valid_on, rate in (
            (since.date() - timedelta(days=1), old),
            (current.start.date(), new),
        ):
            await sales_service.publish_rate(
                session,
                PRINCIPAL,
                FxRateCreate(base=base, quote=quote, rate=rate, valid_on=valid_on),
            )

    clients: list[tuple[DemoClient, uuid.UUID]] = []
    for c in CLIENTS:
        client = await clients_service.create_client(
            session,
            PRINCIPAL,
            ClientCreate(
                name=c.name,
                segment=c.segment,
                lifecycle_stage=c.stage,
                country=c.country,
                currency=c.currency,
                renewal_date=(
                    (now + timedelta(days=c.renewal_in_days)).date()
                    if c.renewal_in_days is not None
                    else None
                ),
                annual_value=Money(amount=SALE_AMOUNTS[c.currency], currency=c.currency),
            ),
        )
        clients.append((c, client.id))
        if c.owner is not None:
            await assignments_service.create_assignment(
                session,
                PRINCIPAL,
                AssignmentCreate(
                    client_id=client.id,
                    manager_id=managers[c.owner],
                    role=AssignmentRole.primary,
                    starts_at=since,
                    reason="Demo book of business",
                ),
            )

    by_name = {c.name: client_id for c, client_id in clients}
    # A second pair of hands on a strategic account, and Noa away this week (Sarah covers).
    await assignments_service.create_assignment(
        session,
        PRINCIPAL,
        AssignmentCreate(
            client_id=by_name["مجموعة النخيل"],
            manager_id=managers["aigul"],
            role=AssignmentRole.secondary,
            starts_at=since,
        ),
    )
    await assignments_service.create_absence(
        session,
        PRINCIPAL,
        managers["noa"],
        AbsenceCreate(
            starts_at=now - timedelta(days=2),
            ends_at=now + timedelta(days=5),
            cover_manager_id=managers["sarah"],
            reason="Annual leave",
        ),
    )

    for c, client_id in clients:
        if c.owner is not None:
            await _interactions(session, c, client_id, managers[c.owner], now)
            await _sales(session, c, client_id, now, current.start, previous.start)
    await _complaints(session, by_name, now)

    for manager, metric, previous_target, current_target, currency in QUOTAS:
        for period, target in ((previous.label, previous_target), (current.label, current_target)):
            await quotas_service.create_quota(
                session,
                PRINCIPAL,
                settings,
                QuotaCreate(
                    manager_id=managers[manager],
                    metric=metric,
                    period=period,
                    target=Money(amount=target, currency=currency) if currency else None,
                    target_count=None if currency else int(target),
                ),
            )

    await run_rules(
        session,
        as_of=None,
        time_zone=settings.org.time_zone,
        trigger="demo",
        actor=ACTOR,
        wait=True,
        statement_timeout_ms=settings.rules.statement_timeout_ms,
    )
    return True


async def _log(
    session: AsyncSession,
    client_id: uuid.UUID,
    manager_id: uuid.UUID,
    at: datetime,
    subject: str,
    channel: Channel = Channel.phone,
    sentiment: Sentiment | None = Sentiment.neutral,
    next_step: NextStep | None = None,
) -> None:
    await interactions_service.create_interaction(
        session,
        PRINCIPAL,
        InteractionCreate(
            client_id=client_id,
            manager_id=manager_id,
            channel=channel,
            direction=Direction.outbound,
            occurred_at=at,
            duration_minutes=30,
            subject=subject,
            sentiment=sentiment,
            next_step=next_step,
        ),
    )


async def _interactions(
    session: AsyncSession, c: DemoClient, client_id: uuid.UUID, manager_id: uuid.UUID, now: datetime
) -> None:
    """A quarterly business review long ago for everyone, then what the story says."""
    days = timedelta(days=1)
    await _log(
        session,
        client_id,
        manager_id,
        now - 150 * days,
        "Quarterly business review",
        Channel.meeting,
        Sentiment.positive,
    )
    if c.story == "silent":
        await _log(
            session,
            client_id,
            manager_id,
            now - 120 * days,
            "Renewal terms sent",
            Channel.email,
            None,
        )
        return
    if c.story == "unhappy":
        await _log(
            session,
            client_id,
            manager_id,
            now - 20 * days,
            "Price increase discussed",
            sentiment=Sentiment.negative,
        )
        await _log(
            session,
            client_id,
            manager_id,
            now - 9 * days,
            "Escalation: delivery delays",
            Channel.video_call,
            Sentiment.negative,
        )
        await _log(
            session,
            client_id,
            manager_id,
            now - 3 * days,
            "Follow-up on the delays",
            sentiment=Sentiment.neutral,
        )
        return
    if c.story == "overdue":
        await _log(
            session,
            client_id,
            manager_id,
            now - 25 * days,
            "Onboarding workshop",
            Channel.meeting,
            Sentiment.positive,
            NextStep(description="Send the signed rollout plan", due_at=now - 14 * days),
        )
        return
    await _log(
        session,
        client_id,
        manager_id,
        now - 40 * days,
        "Product roadmap presentation",
        Channel.presentation,
        Sentiment.positive,
    )
    await _log(
        session,
        client_id,
        manager_id,
        now - 6 * days,
        "Check-in call",
        sentiment=Sentiment.positive,
        next_step=NextStep(description="Share the usage report", due_at=now + 7 * days),
    )


async def _sales(
    session: AsyncSession,
    c: DemoClient,
    client_id: uuid.UUID,
    now: datetime,
    current_start: datetime,
    previous_start: datetime,
) -> None:
    """Two sales in the previous quarter and one so far in this one; a ``declining``
    client sold a lot 100-170 days ago and almost nothing since."""
    amount = SALE_AMOUNTS[c.currency]
    closes = [previous_start + timedelta(days=12), previous_start + timedelta(days=55)]
    closes.append(
        max(current_start, min(current_start + timedelta(days=20), now - timedelta(hours=1)))
    )
    if c.story == "declining":
        closes = [now - timedelta(days=170), now - timedelta(days=110)]
    for i, closed_at in enumerate(closes):
        await sales_service.create_sale(
            session,
            PRINCIPAL,
            SaleCreate(
                client_id=client_id,
                amount=Money(amount=amount, currency=c.currency),
                closed_at=closed_at,
                kind=SaleKind.new if i == 0 else SaleKind.upsell,
                product="Platform licence" if i == 0 else "Premium support",
            ),
        )
    if c.story == "declining":
        small = "100.00" if c.currency != "HUF" else "40000.00"
        await sales_service.create_sale(
            session,
            PRINCIPAL,
            SaleCreate(
                client_id=client_id,
                amount=Money(amount=small, currency=c.currency),
                closed_at=now - timedelta(days=30),
                kind=SaleKind.cross_sell,
                product="Training day",
            ),
        )


async def _complaint(
    session: AsyncSession,
    client_id: uuid.UUID,
    title: str,
    category: Category,
    severity: Severity,
    received_at: datetime,
    steps: tuple[tuple[Status, timedelta], ...] = (),
) -> None:
    """A complaint received at ``received_at`` moved through ``steps`` (status, delay
    after receipt)."""
    complaint_id = await complaints_service.create_complaint(
        session,
        PRINCIPAL,
        ComplaintCreate(
            client_id=client_id,
            title=title,
            category=category,
            severity=severity,
            channel=Channel.email,
            received_at=received_at,
        ),
    )
    for status, delay in steps:
        await complaints_service.transition(
            session,
            PRINCIPAL,
            complaint_id,
            TransitionCreate(
                to=status,
                at=received_at + delay,
                resolution="Credit note issued and process fixed."
                if status == Status.resolved
                else None,
            ),
        )


async def _complaints(session: AsyncSession, by_name: dict[str, uuid.UUID], now: datetime) -> None:
    hours = timedelta(hours=1)
    await _complaint(
        session,
        by_name["Dunai Gépgyár Zrt."],
        "Production line down after the update",
        Category.product,
        Severity.critical,
        now - timedelta(minutes=30),
    )
    # Acknowledged in time, but unresolved six days later: past its 72 h resolution target.
    await _complaint(
        session,
        by_name["شركة الأمل للتجارة"],
        "Invoices billed twice",
        Category.billing,
        Severity.high,
        now - timedelta(days=6),
        ((Status.acknowledged, 2 * hours), (Status.in_progress, 5 * hours)),
    )
    await _complaint(
        session,
        by_name["شركة الأمل للتجارة"],
        "Late delivery of the March order",
        Category.delivery,
        Severity.medium,
        now - timedelta(days=2),
        ((Status.acknowledged, 3 * hours),),
    )
    await _complaint(
        session,
        by_name["Қазақ Телеком Сервис"],
        "Support line not answering",
        Category.service,
        Severity.medium,
        now - timedelta(days=10),
        (
            (Status.acknowledged, 4 * hours),
            (Status.in_progress, 6 * hours),
            (Status.waiting_on_client, 30 * hours),
        ),
    )
    await _complaint(
        session,
        by_name["Όλυμπος Τρόφιμα"],
        "Wrong pallets delivered",
        Category.delivery,
        Severity.low,
        now - timedelta(days=45),
        (
            (Status.acknowledged, 5 * hours),
            (Status.in_progress, 20 * hours),
            (Status.resolved, 60 * hours),
            (Status.closed, 100 * hours),
        ),
    )
    await _complaint(
        session,
        by_name["Northwind Traders Ltd"],
        "Unclear contract wording",
        Category.communication,
        Severity.low,
        now - timedelta(days=20),
        (
            (Status.acknowledged, 8 * hours),
            (Status.in_progress, 9 * hours),
            (Status.resolved, 30 * hours),
        ),
    )


async def seed_database(settings: Settings, url: str) -> bool:
    """Open ``url``, run :func:`seed_demo` in one transaction and commit it."""
    engine = create_engine(settings, url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            return await seed_demo(session, settings)
    finally:
        await engine.dispose()
