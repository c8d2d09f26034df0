"""The rule catalogue (DESIGN §4): one class per rule with its parameters, default
severity and the set-based SQL that finds every subject it holds for at ``:as_of``.

Each rule's ``sql`` is a SELECT over all clients / quotas at once returning
``subject_id, client_id, quota_id, manager_id, evidence`` (evidence: the measured values
and the thresholds they were compared with). Client rules read ``rule_client_facts``
(non-archived clients in ``onboarding`` or ``active``, with their last interactions and
open complaints, built once per run); quota rules read ``rule_quota_facts`` (every quota
started by ``as_of`` with its achievement). Bind parameters: ``:as_of`` (instant),
``:today`` (its date in the organisation's time zone) and ``:p_<name>`` for each
parameter. Thresholds are exclusive: exactly at the threshold does not flag.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.complaints.models import Severity
from app.core.money import minor_units_sql
from app.rules.models import SubjectType

SEGMENTS = ("strategic", "key", "enterprise", "mid_market", "small")


# The latest rate base -> quote published on or before a date: a direct rate or the
# inverse of quote -> base, whichever is newer. Each arm is one backward step of
# uq_fx_rates_base_quote_valid_on (ORDER BY ... LIMIT 1 per arm); callers look it up
# once per distinct (base, quote, date), never per sale. ``{b}``, ``{q}``, ``{d}``: the
# enclosing query's base, quote and date expressions.
_FX_LOOKUP = """
SELECT c.rate FROM (
    (SELECT x.rate, x.valid_on FROM fx_rates x
     WHERE x.base = {b} AND x.quote = {q} AND x.valid_on <= {d}
     ORDER BY x.valid_on DESC LIMIT 1)
    UNION ALL
    (SELECT 1 / x.rate, x.valid_on FROM fx_rates x
     WHERE x.base = {q} AND x.quote = {b} AND x.valid_on <= {d}
     ORDER BY x.valid_on DESC LIMIT 1)) c
ORDER BY c.valid_on DESC LIMIT 1
"""


def fx_lookup(base: str, quote: str, on: str) -> str:
    """SQL of a scalar subquery / LATERAL body with column ``rate``: the latest FX rate
    ``base`` -> ``quote`` (currency codes) on or before the date ``on`` (SQL
    expressions of the enclosing query); no row when none was published."""
    return _FX_LOOKUP.format(b=base, q=quote, d=on)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DaysBySegment(Params):
    strategic: int = Field(default=30, ge=1, le=3650)
    key: int = Field(default=30, ge=1, le=3650)
    enterprise: int = Field(default=45, ge=1, le=3650)
    mid_market: int = Field(default=90, ge=1, le=3650)
    small: int = Field(default=90, ge=1, le=3650)


class Rule:
    key: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str]
    subject_type: ClassVar[SubjectType]
    severity: ClassVar[Severity]
    params_model: ClassVar[type[Params]]

    @classmethod
    def sql(cls) -> str:
        raise NotImplementedError

    @classmethod
    def binds(cls, params: Params) -> dict[str, Any]:
        """``:p_<name>`` bind values; nested models travel as JSON objects."""
        return {
            f"p_{name}": (json.dumps(value.model_dump()) if isinstance(value, BaseModel) else value)
            for name, value in params
        }


def _client_select(evidence: str) -> str:
    return (
        "SELECT f.client_id AS subject_id, f.client_id, NULL::uuid AS quota_id, "
        f"NULL::uuid AS manager_id, {evidence} AS evidence"
    )


class NoRecentContact(Rule):
    class P(Params):
        days_by_segment: DaysBySegment = Field(default_factory=DaysBySegment)

    key = "no_recent_contact"
    name = "No recent contact"
    description = (
        "Days since the last interaction (or since the client was created) exceed the "
        "segment's threshold."
    )
    subject_type = SubjectType.client
    severity = Severity.medium
    params_model = P

    @classmethod
    def sql(cls) -> str:
        return _client_select(
            "jsonb_build_object('last_interaction_at', f.last_interaction_at, "
            "'days_since_contact', round(x.days, 2), 'threshold_days', x.threshold, "
            "'segment', f.segment)"
        ) + (
            " FROM rule_client_facts f, LATERAL (SELECT "
            "(CAST(:p_days_by_segment AS jsonb) ->> f.segment)::int AS threshold, "
            "extract(epoch FROM CAST(:as_of AS timestamptz) "
            "- coalesce(f.last_interaction_at, f.created_at)) / 86400 AS days) x"
            # days > threshold, compared as instants (cheaper than a numeric per client);
            # 24-hour days, as the evidence's days.
            " WHERE coalesce(f.last_interaction_at, f.created_at)"
            " < CAST(:as_of AS timestamptz) - x.threshold * interval '24 hours'"
        )


class Unassigned(Rule):
    P = Params
    key = "unassigned"
    name = "Unassigned"
    description = "An active client has no responsible manager (no primary, no cover)."
    subject_type = SubjectType.client
    severity = Severity.high
    params_model = P

    @classmethod
    def sql(cls) -> str:
        return _client_select("jsonb_build_object('responsible_manager', NULL)") + (
            " FROM rule_client_facts f"
            " WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.client_id = f.client_id"
            " AND a.role IN ('primary', 'cover') AND a.period @> CAST(:as_of AS timestamptz))"
        )


class OpenComplaints(Rule):
    class P(Params):
        min_open: int = Field(default=2, ge=1, le=1000)
        any_critical: bool = True

    key = "open_complaints"
    name = "Open complaints"
    description = "min_open or more unresolved complaints, or any unresolved critical one."
    subject_type = SubjectType.client
    severity = Severity.high
    params_model = P

    @classmethod
    def sql(cls) -> str:
        return _client_select(
            "jsonb_build_object('open_complaints', f.open_complaints, "
            "'open_critical', f.open_critical, 'min_open', CAST(:p_min_open AS int), "
            "'any_critical', CAST(:p_any_critical AS boolean))"
        ) + (
            " FROM rule_client_facts f WHERE f.open_complaints >= :p_min_open"
            " OR (:p_any_critical AND f.open_critical > 0)"
        )


class ComplaintSlaBreached(Rule):
    P = Params
    key = "complaint_sla_breached"
    name = "Complaint SLA breached"
    description = "An unresolved complaint is past its resolution due time (SLA policy)."
    subject_type = SubjectType.client
    severity = Severity.high
    params_model = P

    @classmethod
    def sql(cls) -> str:
        # rule_open_complaints: unresolved at as_of, with the breach already decided
        # (engine._prepare_facts), so a past as_of sees the history as it was then.
        return (
            "SELECT o.client_id AS subject_id, o.client_id, NULL::uuid AS quota_id, "
            "NULL::uuid AS manager_id, jsonb_build_object("
            "'breached_complaints', count(*), "
            "'complaint_ids', (array_agg(o.complaint_id ORDER BY o.received_at))[1:20], "
            "'worst_overdue_hours', round(max(o.overdue_hours), 2)"
            ") AS evidence"
            " FROM rule_open_complaints o"
            " JOIN rule_client_facts f ON f.client_id = o.client_id"
            " WHERE o.breached GROUP BY o.client_id"
        )


class NegativeSentiment(Rule):
    class P(Params):
        window: int = Field(default=3, ge=1, le=50, description="Last N interactions.")
        min_negative: int = Field(default=2, ge=1, le=50)

        @model_validator(mode="after")
        def _fits(self) -> NegativeSentiment.P:
            if self.min_negative > self.window:
                raise ValueError("min_negative cannot exceed window")
            return self

    key = "negative_sentiment"
    name = "Negative sentiment"
    description = "min_negative of the last window interactions were negative."
    subject_type = SubjectType.client
    severity = Severity.medium
    params_model = P

    @classmethod
    def sql(cls) -> str:
        return (
            _client_select(
                "jsonb_build_object('negative', f.recent_negative, 'of_last', f.recent_count, "
                "'window', CAST(:p_window AS int), 'min_negative', CAST(:p_min_negative AS int))"
            )
            + " FROM rule_client_facts f WHERE f.recent_negative >= :p_min_negative"
        )


class OverdueFollowUp(Rule):
    class P(Params):
        days_overdue: int = Field(default=7, ge=0, le=3650)

    key = "overdue_follow_up"
    name = "Overdue follow-up"
    description = "A next step is more than days_overdue days past due and not done."
    subject_type = SubjectType.client
    severity = Severity.low
    params_model = P

    @classmethod
    def sql(cls) -> str:
        return (
            "SELECT i.client_id AS subject_id, i.client_id, NULL::uuid AS quota_id, "
            "NULL::uuid AS manager_id, jsonb_build_object("
            "'overdue_next_steps', count(*), "
            "'interaction_ids', (array_agg(i.id ORDER BY i.next_step_due_at))[1:20], "
            "'oldest_due_at', min(i.next_step_due_at), "
            "'days_overdue', round(extract(epoch FROM CAST(:as_of AS timestamptz) "
            "- min(i.next_step_due_at)) / 86400, 2), "
            "'threshold_days', CAST(:p_days_overdue AS int)) AS evidence"
            " FROM interactions i JOIN rule_client_facts f ON f.client_id = i.client_id"
            " WHERE i.next_step_done IS false AND i.next_step_due_at < "
            "CAST(:as_of AS timestamptz) - make_interval(days => :p_days_overdue)"
            " GROUP BY i.client_id"
        )


class RenewalAtRisk(Rule):
    class P(Params):
        within_days: int = Field(default=60, ge=1, le=3650)
        no_contact_days: int = Field(default=30, ge=1, le=3650)

    key = "renewal_at_risk"
    name = "Renewal at risk"
    description = (
        "Renewal within within_days and (no contact for no_contact_days or an open complaint)."
    )
    subject_type = SubjectType.client
    severity = Severity.high
    params_model = P

    @classmethod
    def sql(cls) -> str:
        return _client_select(
            "jsonb_build_object('renewal_date', f.renewal_date, "
            "'days_to_renewal', f.renewal_date - CAST(:today AS date), "
            "'days_since_contact', round(x.days, 2), 'open_complaints', f.open_complaints, "
            "'within_days', CAST(:p_within_days AS int), "
            "'no_contact_days', CAST(:p_no_contact_days AS int))"
        ) + (
            " FROM rule_client_facts f, LATERAL (SELECT extract(epoch FROM "
            "CAST(:as_of AS timestamptz) - coalesce(f.last_interaction_at, f.created_at)) "
            "/ 86400 AS days) x"
            " WHERE f.renewal_date >= CAST(:today AS date)"
            " AND f.renewal_date <= CAST(:today AS date) + :p_within_days"
            " AND (f.open_complaints > 0 OR coalesce(f.last_interaction_at, f.created_at)"
            " < CAST(:as_of AS timestamptz) - make_interval(hours => 24 * :p_no_contact_days))"
        )


class RevenueDecline(Rule):
    class P(Params):
        window_days: int = Field(default=90, ge=7, le=730)
        max_ratio: str = Field(
            default="0.5",
            pattern=r"^(0(\.\d{1,4})?|1(\.0{1,4})?)$",
            description="Flag when recent < previous × max_ratio.",
        )
        min_previous: str = Field(
            default="1000",
            pattern=r"^\d{1,15}(\.\d{1,4})?$",
            description="Previous window must reach this, in the client's currency.",
        )

    key = "revenue_decline"
    name = "Revenue decline"
    description = (
        "Sales in the last window_days are below max_ratio of the window before, when "
        "that was at least min_previous (client currency; other currencies converted at "
        "the latest rate on or before as_of's local date)."
    )
    subject_type = SubjectType.client
    severity = Severity.medium
    params_model = P

    @classmethod
    def sql(cls) -> str:
        # One FX rate per pair of currencies (the rate of as_of's local date), looked up
        # before the sales are read; the sales are then converted and summed in one pass.
        # (A product of numerics is exact: sum(amount * rate) = sum(amount) * rate.)
        return (
            # DISTINCT per column: the planner then estimates the few currencies from the
            # column statistics (a plain UNION is guessed at thousands of rows, squared).
            "WITH currencies AS (SELECT DISTINCT base AS code FROM fx_rates"
            " UNION SELECT DISTINCT quote FROM fx_rates),"
            " rates AS MATERIALIZED ("
            " SELECT a.code AS base, b.code AS quote, fx.rate"
            " FROM currencies a JOIN currencies b ON a.code <> b.code"
            " LEFT JOIN LATERAL ("
            + fx_lookup("a.code", "b.code", "CAST(:today AS date)")
            + ") fx ON true),"
            " converted AS ("
            " SELECT s.client_id, f.currency,"
            " coalesce(sum(s.amount * x.rate) FILTER (WHERE s.closed_at >= "
            "CAST(:as_of AS timestamptz) - make_interval(days => :p_window_days)), 0) AS recent,"
            " coalesce(sum(s.amount * x.rate) FILTER (WHERE s.closed_at < "
            "CAST(:as_of AS timestamptz) - make_interval(days => :p_window_days)), 0)"
            " AS previous,"
            " bool_or(x.rate IS NULL) AS missing_rate"
            " FROM sales s JOIN rule_client_facts f ON f.client_id = s.client_id"
            " LEFT JOIN rates r ON r.base = s.currency AND r.quote = f.currency,"
            " LATERAL (SELECT CASE WHEN s.currency = f.currency THEN 1::numeric"
            " ELSE r.rate END AS rate) x"
            " WHERE s.closed_at >= CAST(:as_of AS timestamptz) "
            "- make_interval(days => 2 * :p_window_days)"
            " AND s.closed_at < CAST(:as_of AS timestamptz)"
            " GROUP BY s.client_id, f.currency)"
            " SELECT c.client_id AS subject_id, c.client_id, NULL::uuid AS quota_id,"
            " NULL::uuid AS manager_id, jsonb_build_object("
            "'recent', "
            + money_json("c.recent", "c.currency")
            + ", 'previous', "
            + money_json("c.previous", "c.currency")
            + ", 'currency', c.currency, 'window_days', CAST(:p_window_days AS int),"
            " 'max_ratio', CAST(:p_max_ratio AS numeric), 'min_previous', "
            + money_json("CAST(:p_min_previous AS numeric)", "c.currency")
            + ") AS evidence"
            " FROM converted c WHERE NOT c.missing_rate"
            " AND c.previous >= CAST(:p_min_previous AS numeric)"
            " AND c.recent < c.previous * CAST(:p_max_ratio AS numeric)"
        )


def money_json(amount: str, currency: str) -> str:
    """SQL of a money value as the API renders it (DESIGN §3): ``{"amount": "1234.50",
    "currency": "EUR"}``, the amount a decimal string with the currency's ISO 4217
    minor-unit digits (rounded half away from zero: measured values, e.g. converted
    sums, have more). ``amount`` and ``currency`` are SQL expressions."""
    return (
        f"jsonb_build_object('amount', CAST(round({amount}, {minor_units_sql(currency)})"
        f" AS text), 'currency', {currency})"
    )


def _quota_select(evidence: str) -> str:
    return (
        "SELECT q.quota_id AS subject_id, NULL::uuid AS client_id, q.quota_id, q.manager_id, "
        f"{evidence} AS evidence"
    )


# Money for sales quotas (in the target currency), plain numbers for counts.
_QUOTA_FIGURES = (
    "'metric', q.metric, 'period_start', q.period_start, 'period_end', q.period_end, "
    "'achieved', CASE WHEN q.metric = 'sales_amount' THEN "
    + money_json("q.achieved", "q.target_currency")
    + " ELSE to_jsonb(q.achieved) END, 'target', CASE WHEN q.metric = 'sales_amount' THEN "
    + money_json("q.target", "q.target_currency")
    + " ELSE to_jsonb(q.target) END, 'attainment', round(q.achieved / q.target, 4)"
)


class QuotaBehindPace(Rule):
    class P(Params):
        pace_ratio: str = Field(
            default="0.8",
            pattern=r"^(0(\.\d{1,4})?|1(\.0{1,4})?)$",
            description="Flag when attainment < pace_ratio × elapsed share.",
        )
        min_elapsed_share: str = Field(default="0.3333", pattern=r"^(0(\.\d{1,4})?|1(\.0{1,4})?)$")

    key = "quota_behind_pace"
    name = "Quota behind pace"
    description = (
        "A running quota's attainment is below pace_ratio of the elapsed share of its "
        "period, once min_elapsed_share of the period has passed."
    )
    subject_type = SubjectType.quota
    severity = Severity.medium
    params_model = P

    @classmethod
    def sql(cls) -> str:
        return _quota_select(
            f"jsonb_build_object({_QUOTA_FIGURES}, 'elapsed_share', round(x.share, 4), "
            "'expected_attainment', round(CAST(:p_pace_ratio AS numeric) * x.share, 4), "
            "'pace_ratio', CAST(:p_pace_ratio AS numeric), "
            "'min_elapsed_share', CAST(:p_min_elapsed_share AS numeric))"
        ) + (
            " FROM rule_quota_facts q, LATERAL (SELECT CAST(extract(epoch FROM "
            "CAST(:as_of AS timestamptz) - q.period_start) AS numeric) / CAST(extract(epoch"
            " FROM q.period_end - q.period_start) AS numeric) AS share) x"
            " WHERE q.period_start <= CAST(:as_of AS timestamptz)"
            " AND CAST(:as_of AS timestamptz) < q.period_end AND q.missing_rate IS NULL"
            " AND x.share >= CAST(:p_min_elapsed_share AS numeric)"
            " AND q.achieved / q.target < CAST(:p_pace_ratio AS numeric) * x.share"
        )


class QuotaMissed(Rule):
    class P(Params):
        lookback_days: int = Field(
            default=120, ge=1, le=3650, description="Only quotas ended this recently."
        )

    key = "quota_missed"
    name = "Quota missed"
    description = "A quota that ended within lookback_days reached less than 100%."
    subject_type = SubjectType.quota
    severity = Severity.high
    params_model = P

    @classmethod
    def sql(cls) -> str:
        return _quota_select(
            f"jsonb_build_object({_QUOTA_FIGURES}, 'lookback_days', CAST(:p_lookback_days AS int))"
        ) + (
            " FROM rule_quota_facts q WHERE q.period_end <= CAST(:as_of AS timestamptz)"
            " AND q.period_end > CAST(:as_of AS timestamptz) "
            "- make_interval(days => :p_lookback_days)"
            " AND q.missing_rate IS NULL AND q.achieved < q.target"
        )


class QuotaMissedRepeatedly(Rule):
    class P(Params):
        consecutive: int = Field(default=2, ge=2, le=12)

    key = "quota_missed_repeatedly"
    name = "Quota missed repeatedly"
    description = "A manager missed their last `consecutive` ended quotas of one metric."
    subject_type = SubjectType.manager
    severity = Severity.critical
    params_model = P

    @classmethod
    def sql(cls) -> str:
        return (
            "WITH ranked AS (SELECT q.*, row_number() OVER (PARTITION BY q.manager_id, "
            "q.metric ORDER BY q.period_end DESC) AS rn FROM rule_quota_facts q"
            " WHERE q.period_end <= CAST(:as_of AS timestamptz) AND q.missing_rate IS NULL),"
            " per_metric AS (SELECT manager_id, metric,"
            " jsonb_agg(quota_id ORDER BY period_end DESC) AS quota_ids"
            " FROM ranked WHERE rn <= :p_consecutive GROUP BY manager_id, metric"
            " HAVING count(*) = :p_consecutive AND bool_and(achieved < target))"
            " SELECT manager_id AS subject_id, NULL::uuid AS client_id, NULL::uuid AS quota_id,"
            " manager_id, jsonb_build_object('consecutive', CAST(:p_consecutive AS int),"
            " 'missed', jsonb_object_agg(metric, quota_ids)) AS evidence"
            " FROM per_metric GROUP BY manager_id"
        )


CATALOGUE: dict[str, type[Rule]] = {
    rule.key: rule
    for rule in (
        NoRecentContact,
        Unassigned,
        OpenComplaints,
        ComplaintSlaBreached,
        NegativeSentiment,
        OverdueFollowUp,
        RenewalAtRisk,
        RevenueDecline,
        QuotaBehindPace,
        QuotaMissed,
        QuotaMissedRepeatedly,
    )
}
