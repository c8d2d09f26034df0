"""Set-based SQL of the importer, per resource, over the staging table ``import_rows``.

``CHECKS`` mark rows that cannot be written (``error``) — unknown references, conflicts
with stored rows or with earlier rows of the same file — before anything is written, so
constraint violations are the exception; they only touch the rows they reject.

``WRITE`` (built by :func:`write`) then writes the rows ``:lo``..``:hi`` that passed, in
one statement keyed on ``external_ref``:

* ``src``: each row with its references resolved by joins (``client_ref`` → the
  client's id, ...);
* ``cls``: the rows that are new, or whose stored twin differs in an updatable column
  (``IS DISTINCT FROM``). Unchanged rows drop out here, so a re-import writes no row and
  no audit row;
* the new rows are inserted, the changed ones updated, and each gets one audit row
  (source ``import``): ``create``, or ``update`` with ``{column: [before, after]}`` of
  the changed columns as the API writes them (numbers as strings, instants in ISO 8601);
  both carry ``import_row`` and ``import_id``;
* it answers one row, ``created`` and ``updated``: nothing per row goes back.

Rows are written in file order, and new rows get ids that follow it (the UUID version 7
layout: the statement's millisecond, a per-import salt, the row number as counter,
random bits), so the primary key, the ``(created_at, id)`` index and the audit index on
``resource_id`` grow at their right edge instead of at random pages. (Writing client
records by client instead measured slower on the benchmark's file, whose refs come in
ascending order: the ``external_ref`` index then loses its locality.)
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.ids import ordered_uuid_sql
from app.core.money import minor_units_sql

OK = "r.error IS NULL"
BATCH = "r.error IS NULL AND r.row_no BETWEEN :lo AND :hi"


@dataclass(frozen=True)
class Link:
    """A reference to a row of the same table (a lead, a parent company), named by
    ``ref`` and stored in ``column``; it may name a row that is new in the same file."""

    column: str
    ref: str


@dataclass(frozen=True)
class Target:
    """How the staged rows of one resource become rows of ``table``.

    ``values``: (column, SQL expression over ``r`` = the staged row and the aliases of
    ``joins``) for every written column but ``id`` and ``external_ref``; ``updatable``:
    the columns a known ref compares and updates (the link column included);
    ``client``: the audit row's ``client_id`` over ``c`` (a written row); ``money``:
    (amount column, its currency column), which the audit renders as the API does (a
    string with the currency's minor-unit digits); ``seconds``: interval columns the
    audit renders as seconds, as the API does; ``on_create``: extra CTEs over the
    created rows."""

    table: str
    joins: str
    values: tuple[tuple[str, str], ...]
    updatable: tuple[str, ...]
    client: str
    link: Link | None = None
    money: tuple[tuple[str, str], ...] = ()
    seconds: tuple[str, ...] = ()
    on_create: str = ""


def _value(target: Target, row: str, column: str) -> str:
    """The SQL of ``column`` of ``row`` (``c.`` the written row, ``c.old_`` its stored
    twin) as the audit renders it, as the API's audit rows do: money as a string with
    its currency's minor-unit digits, intervals in seconds, the rest as JSON."""
    expr = f"{row}{column}"
    for amount, currency in target.money:
        if column == amount:
            # An old amount with its old currency when that can change, else the row's.
            unit = (
                f"{row}{currency}"
                if row == "c." or currency in target.updatable
                else (f"c.{currency}")
            )
            return f"CAST(round({expr}, {minor_units_sql(unit)}) AS text)"
    if column in target.seconds:
        return f"extract(epoch FROM {expr})"
    return expr


def _changes(target: Target) -> str:
    """The audit row's ``changes``: the import's row and id; for a create, every written
    column as ``[null, value]`` (as the API's create rows); for an update, the changed
    columns as ``[before, after]``. (A create's object is built in one call: building
    it in pieces and concatenating cost twice as much, 5 of a million rows' 45 s.)"""
    source = (
        "'import_row', jsonb_build_array(NULL, c.row_no),"
        " 'import_id', jsonb_build_array(NULL, CAST(:import_id AS text))"
    )
    written = ["external_ref", *(name for name, _ in target.values)]
    if target.link is not None:
        written.append(target.link.column)
    created = ", ".join(
        f"'{name}', jsonb_build_array(NULL, {_value(target, 'c.', name)})" for name in written
    )
    diff = " || ".join(
        f"CASE WHEN c.old_{u} IS DISTINCT FROM c.{u} THEN jsonb_build_object('{u}',"
        f" jsonb_build_array({_value(target, 'c.old_', u)}, {_value(target, 'c.', u)}))"
        " ELSE CAST('{}' AS jsonb) END"
        for u in target.updatable
    )
    return (
        f"CASE WHEN c.old_id IS NULL THEN jsonb_build_object({source}, {created})"
        f" ELSE jsonb_build_object({source}) || {diff} END"
    )


def _audit(target: Target, rows: str, changes: str) -> str:
    return (
        "INSERT INTO audit_events (actor, roles, source, request_id, resource, resource_id,"
        " action, client_id, changes)"
        " SELECT :actor, CAST(:roles AS text[]), 'import', :request_id,"
        f" '{target.table}', CAST(c.id AS text),"
        " CASE WHEN c.old_id IS NULL THEN 'create' ELSE 'update' END,"
        f" {target.client}, {changes} FROM {rows}"
    )


def write(target: Target) -> str:
    """The statement that writes the batch ``:lo``..``:hi`` (see the module docstring).
    Binds: lo, hi, actor, roles, request_id, import_id, id_salt (0..4095)."""
    table, link = target.table, target.link
    columns = [name for name, _ in target.values] + ([link.column] if link else [])
    src = ", ".join(f"{expr} AS {name}" for name, expr in target.values)
    olds = ", ".join(f"e.{u} AS old_{u}" for u in target.updatable)
    fresh = f"coalesce(e.id, {ordered_uuid_sql('s.row_no', ':id_salt')}) AS id"
    if link is None:
        staged = (
            f"src AS (SELECT r.row_no, r.external_ref, {src} FROM import_rows r {target.joins}"
            f" WHERE {BATCH})"
        )
        rows = (
            f"SELECT s.*, e.id AS old_id, {olds}, {fresh}"
            f" FROM src s LEFT JOIN {table} e ON e.external_ref = s.external_ref"
        )
    else:
        # A link resolves to a stored row, else to a row created by this statement, else
        # (its row is in another batch) stays as stored; a blank ref clears it.
        staged = (
            f"src AS (SELECT r.row_no, r.external_ref, {src}, r.{link.ref} AS link_ref,"
            f" lk.id AS link_db FROM import_rows r {target.joins}"
            f" LEFT JOIN {table} lk ON lk.external_ref = r.{link.ref} WHERE {BATCH}),"
            f" cur AS MATERIALIZED (SELECT s.*, e.id AS old_id, {olds}, {fresh}"
            f" FROM src s LEFT JOIN {table} e ON e.external_ref = s.external_ref)"
        )
        rows = (
            "SELECT c.*, CASE WHEN c.link_ref IS NULL THEN NULL"
            f" ELSE coalesce(c.link_db, f.id, c.old_{link.column}) END AS {link.column}"
            " FROM cur c LEFT JOIN cur f ON f.external_ref = c.link_ref AND f.old_id IS NULL"
        )
    olds_x = ", ".join(f"x.old_{u}" for u in target.updatable)
    news_x = ", ".join(f"x.{u}" for u in target.updatable)
    sets = ", ".join(f"{u} = c.{u}" for u in target.updatable)
    return (
        f"WITH {staged},"
        f" cls AS MATERIALIZED (SELECT x.* FROM ({rows}) x"
        f" WHERE x.old_id IS NULL OR ({olds_x}) IS DISTINCT FROM ({news_x})"
        " ORDER BY x.row_no),"
        f" ins AS (INSERT INTO {table} (id, external_ref, {', '.join(columns)}, version,"
        f" created_by, updated_by) SELECT c.id, c.external_ref,"
        f" {', '.join('c.' + name for name in columns)}, 1, :actor, :actor"
        " FROM cls c WHERE c.old_id IS NULL),"
        f" upd AS (UPDATE {table} t SET {sets}, version = t.version + 1, updated_at = now(),"
        " updated_by = :actor FROM cls c WHERE c.old_id IS NOT NULL AND t.id = c.old_id),"
        f" audited AS ({_audit(target, 'cls c', _changes(target))})"
        f"{target.on_create}"
        " SELECT count(*) FILTER (WHERE old_id IS NULL) AS created,"
        " count(*) FILTER (WHERE old_id IS NOT NULL) AS updated FROM cls"
    )


def relink(target: Target) -> str:
    """After a batch was split (a refused row): set the links that named a row of a
    later batch. Answers how many rows it changed that no batch had written (their
    ``updated_at`` is not this transaction's ``now()``)."""
    assert target.link is not None
    table, column, ref = target.table, target.link.column, target.link.ref
    changes = (
        "jsonb_build_object('import_row', jsonb_build_array(NULL, c.row_no),"
        " 'import_id', jsonb_build_array(NULL, CAST(:import_id AS text)),"
        f" '{column}', jsonb_build_array(to_jsonb(c.old_link), to_jsonb(c.link)))"
    )
    return (
        "WITH want AS MATERIALIZED (SELECT t.id, r.row_no, t.id AS old_id,"
        f" t.{column} AS old_link, lk.id AS link, t.updated_at <> now() AS untouched"
        f" FROM import_rows r JOIN {table} t ON t.external_ref = r.external_ref"
        f" LEFT JOIN {table} lk ON lk.external_ref = r.{ref}"
        f" WHERE {OK} AND (r.{ref} IS NULL OR lk.id IS NOT NULL)"
        f" AND t.{column} IS DISTINCT FROM lk.id),"
        f" upd AS (UPDATE {table} t SET {column} = w.link, version = t.version + 1,"
        " updated_at = now(), updated_by = :actor FROM want w WHERE t.id = w.id),"
        f" audited AS ({_audit(target, 'want c', changes)})"
        " SELECT count(*) FILTER (WHERE untouched) FROM want"
    )


def _known(ref: str, table: str, what: str) -> str:
    """Reject rows whose ``ref`` names no stored row (only those rows are touched)."""
    return (
        f"UPDATE import_rows r SET error = '{ref} ' || r.{ref} || ': no {what} with that"
        f" external_ref' WHERE {OK} AND r.{ref} IS NOT NULL"
        f" AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.external_ref = r.{ref})"
    )


def _resolve(ref: str, target: str, table: str, what: str) -> list[str]:
    """Store the referenced id in the staged row (for checks that need it), reject the
    rows whose ``ref`` names no stored row."""
    return [
        f"UPDATE import_rows r SET {target} = t.id FROM {table} t"
        f" WHERE {OK} AND t.external_ref = r.{ref}",
        f"UPDATE import_rows r SET error = '{ref} ' || r.{ref} || ': no {what} with that"
        f" external_ref' WHERE {OK} AND r.{ref} IS NOT NULL AND r.{target} IS NULL",
    ]


def _ref_in_db_or_file(ref: str, table: str, what: str) -> str:
    return (
        f"UPDATE import_rows r SET error = '{ref} ' || r.{ref} || ': no {what} with that"
        f" external_ref' WHERE {OK} AND r.{ref} IS NOT NULL"
        f" AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.external_ref = r.{ref})"
        f" AND NOT EXISTS (SELECT 1 FROM import_rows o WHERE o.external_ref = r.{ref}"
        " AND o.error IS NULL)"
    )


def ref_to_rejected_row(ref: str, table: str) -> str:
    """Refuse rows whose ``ref`` names a row of the same file that was refused, when no
    stored record has that external_ref either (the link would silently be lost). Run
    until it refuses nothing: a chain is refused one link per run."""
    return (
        f"UPDATE import_rows r SET error = '{ref} ' || r.{ref} || ': its row ' || o.row_no"
        f" || ' was rejected' FROM import_rows o WHERE {OK} AND o.external_ref = r.{ref}"
        " AND o.error IS NOT NULL"
        f" AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.external_ref = r.{ref})"
        f" AND NOT EXISTS (SELECT 1 FROM import_rows g WHERE g.external_ref = r.{ref}"
        " AND g.error IS NULL)"
    )


def _no_cycle(table: str, ref: str, fk: str, what: str) -> str:
    """Refuse file rows whose ``ref`` (lead, parent) would close a cycle, judged on the
    hierarchy as it will be: the file's links for its rows, the stored links for the
    rest (a node is its external_ref, or its id when it has none)."""
    return f"""
WITH RECURSIVE nodes AS (
    SELECT 'ref:' || r.external_ref AS node, 'ref:' || r.{ref} AS up
    FROM import_rows r WHERE r.error IS NULL
    UNION ALL
    SELECT coalesce('ref:' || t.external_ref, 'id:' || t.id),
           coalesce('ref:' || p.external_ref, 'id:' || p.id)
    FROM {table} t LEFT JOIN {table} p ON p.id = t.{fk}
    WHERE NOT EXISTS (SELECT 1 FROM import_rows r
                      WHERE r.error IS NULL AND r.external_ref = t.external_ref)),
walk(start, here, seen) AS (
    SELECT n.node, n.up, ARRAY[n.node] FROM nodes n
    WHERE n.up IS NOT NULL AND n.node IN (SELECT 'ref:' || external_ref FROM import_rows
                                          WHERE error IS NULL AND {ref} IS NOT NULL)
    UNION ALL
    SELECT w.start, n.up, w.seen || n.node FROM walk w JOIN nodes n ON n.node = w.here
    WHERE n.up IS NOT NULL AND NOT n.node = ANY(w.seen) AND cardinality(w.seen) < 10000)
UPDATE import_rows r SET error = '{ref} ' || r.{ref} || ' would make the {what} hierarchy a cycle'
WHERE r.error IS NULL AND 'ref:' || r.external_ref IN (SELECT start FROM walk WHERE here = start)
"""


DUPLICATES = (
    "UPDATE import_rows r SET error = 'external_ref ' || r.external_ref || ' repeats row '"
    " || d.first FROM (SELECT external_ref, min(row_no) AS first FROM import_rows"
    " WHERE error IS NULL GROUP BY external_ref HAVING count(*) > 1) d"
    f" WHERE {OK} AND r.external_ref = d.external_ref AND r.row_no > d.first"
)

MANAGERS_CHECKS = [
    f"UPDATE import_rows r SET error = 'reports_to_ref cannot be the manager itself'"
    f" WHERE {OK} AND r.reports_to_ref = r.external_ref",
    _ref_in_db_or_file("reports_to_ref", "managers", "manager"),
    _no_cycle("managers", "reports_to_ref", "reports_to_id", "manager"),
    "UPDATE import_rows r SET error = 'email ' || r.email || ' is used by manager '"
    " || coalesce(m.external_ref, m.id::text) FROM managers m"
    f" WHERE {OK} AND lower(m.email) = lower(r.email)"
    " AND m.external_ref IS DISTINCT FROM r.external_ref",
    "UPDATE import_rows r SET error = 'email ' || r.email || ' repeats row ' || d.first"
    " FROM (SELECT lower(email) AS email, min(row_no) AS first FROM import_rows"
    " WHERE error IS NULL GROUP BY lower(email) HAVING count(*) > 1) d"
    f" WHERE {OK} AND lower(r.email) = d.email AND r.row_no > d.first",
]
MANAGERS = Target(
    "managers",
    "",
    (
        ("email", "r.email"),
        ("full_name", "r.full_name"),
        ("role", "coalesce(r.role, 'account_manager')"),
        ("time_zone", "coalesce(r.time_zone, 'UTC')"),
        ("region", "r.region"),
        ("active", "coalesce(r.active, true)"),
    ),
    ("email", "full_name", "role", "time_zone", "region", "active", "reports_to_id"),
    "NULL::uuid",
    link=Link("reports_to_id", "reports_to_ref"),
)

CLIENTS_CHECKS = [
    f"UPDATE import_rows r SET error = 'parent_ref cannot be the client itself'"
    f" WHERE {OK} AND r.parent_ref = r.external_ref",
    _ref_in_db_or_file("parent_ref", "clients", "client"),
    _no_cycle("clients", "parent_ref", "parent_id", "account"),
]
CLIENTS = Target(
    "clients",
    "",
    (
        ("name", "r.name"),
        ("legal_name", "r.legal_name"),
        ("industry", "r.industry"),
        ("segment", "r.segment"),
        ("lifecycle_stage", "coalesce(r.lifecycle_stage, 'prospect')"),
        ("country", "r.country"),
        ("currency", "r.currency"),
        ("time_zone", "r.time_zone"),
        ("renewal_date", "r.renewal_date"),
        ("annual_value_amount", "r.annual_value"),
        ("annual_value_currency", "r.annual_value_currency"),
    ),
    (
        "name",
        "legal_name",
        "industry",
        "segment",
        "lifecycle_stage",
        "country",
        "currency",
        "time_zone",
        "renewal_date",
        "annual_value_amount",
        "annual_value_currency",
        "parent_id",
    ),
    "c.id",
    link=Link("parent_id", "parent_ref"),
    money=(("annual_value_amount", "annual_value_currency"),),
)

_OVERLAP = (
    "((x.role = r.role AND r.role IN ('primary', 'cover')) OR (x.manager_id = r.manager_id"
    " AND r.role IN ('primary', 'cover') AND x.role IN ('primary', 'cover')"
    " AND x.role <> r.role))"
)
ASSIGNMENTS_CHECKS = [
    *_resolve("client_ref", "client_id", "clients", "client"),
    *_resolve("manager_ref", "manager_id", "managers", "manager"),
    "UPDATE import_rows r SET error = 'manager ' || r.manager_ref || ' is not active'"
    f" FROM managers m WHERE {OK} AND m.id = r.manager_id AND NOT m.active",
    "UPDATE import_rows r SET error = 'client ' || r.client_ref || ' is archived'"
    f" FROM clients c WHERE {OK} AND c.id = r.client_id AND c.archived_at IS NOT NULL",
    "UPDATE import_rows r SET error = 'overlaps ' || x.role || ' assignment '"
    " || coalesce(x.external_ref, x.id::text) FROM assignments x"
    f" WHERE {OK} AND x.client_id = r.client_id"
    " AND x.external_ref IS DISTINCT FROM r.external_ref"
    f" AND x.period && tstzrange(r.starts_at, r.ends_at, '[)') AND {_OVERLAP}",
]
# Pairs of rows of the file that cannot both go in (earlier, later, reason); resolved in
# row order by the engine, so a row is only refused for a row that was accepted.
ASSIGNMENTS_PAIRS = (
    "SELECT x.row_no, r.row_no, 'overlaps the ' || x.role || ' assignment of row ' || x.row_no"
    " FROM import_rows r JOIN import_rows x ON x.client_id = r.client_id"
    " AND x.row_no < r.row_no"
    f" WHERE {OK} AND x.error IS NULL"
    " AND tstzrange(x.starts_at, x.ends_at, '[)') && tstzrange(r.starts_at, r.ends_at, '[)')"
    f" AND {_OVERLAP}"
)
ASSIGNMENTS = Target(
    "assignments",
    "",
    (
        ("client_id", "r.client_id"),
        ("manager_id", "r.manager_id"),
        ("role", "r.role"),
        ("starts_at", "r.starts_at"),
        ("ends_at", "r.ends_at"),
        ("reason", "r.reason"),
    ),
    ("client_id", "manager_id", "role", "starts_at", "ends_at", "reason"),
    "c.client_id",
)

INTERACTIONS_CHECKS = [
    _known("client_ref", "clients", "client"),
    _known("manager_ref", "managers", "manager"),
]
INTERACTIONS = Target(
    "interactions",
    "JOIN clients ct ON ct.external_ref = r.client_ref"
    " JOIN managers mt ON mt.external_ref = r.manager_ref",
    (
        ("client_id", "ct.id"),
        ("manager_id", "mt.id"),
        ("channel", "r.channel"),
        ("direction", "r.direction"),
        ("occurred_at", "r.occurred_at"),
        ("duration_minutes", "r.duration_minutes"),
        ("subject", "r.subject"),
        ("notes", "r.notes"),
        ("sentiment", "r.sentiment"),
    ),
    (
        "client_id",
        "manager_id",
        "channel",
        "direction",
        "occurred_at",
        "duration_minutes",
        "subject",
        "notes",
        "sentiment",
    ),
    "c.client_id",
)

COMPLAINTS_CHECKS = [
    _known("client_ref", "clients", "client"),
    "UPDATE import_rows r SET error = 'responded_at ' || r.responded_at || ' is before"
    f" received_at ' || r.received_at WHERE {OK} AND r.responded_at < r.received_at",
    "UPDATE import_rows r SET error = 'a closed complaint needs responded_at'"
    f" WHERE {OK} AND r.status = 'closed' AND r.responded_at IS NULL",
]
# A new complaint gets its status history: open at received_at and, when closed, the
# legal path acknowledged → in_progress → resolved → closed at responded_at. A known ref
# only updates its descriptive fields (history is never rewritten).
COMPLAINTS_HISTORY = (
    ", history AS (INSERT INTO complaint_transitions (id, complaint_id, client_id,"
    " from_status, to_status, at, actor) SELECT gen_random_uuid(), c.id, c.client_id,"
    " s.from_status, s.to_status, s.at, :actor FROM cls c,"
    " LATERAL (VALUES (1, NULL, 'open', c.received_at),"
    " (2, 'open', 'acknowledged', c.first_responded_at),"
    " (3, 'acknowledged', 'in_progress', c.first_responded_at),"
    " (4, 'in_progress', 'resolved', c.first_responded_at),"
    " (5, 'resolved', 'closed', c.first_responded_at)) AS s(step, from_status, to_status, at)"
    " WHERE c.old_id IS NULL AND (s.step = 1 OR c.status = 'closed') ORDER BY c.row_no, s.step)"
)
COMPLAINTS = Target(
    "complaints",
    "JOIN clients ct ON ct.external_ref = r.client_ref",
    (
        ("client_id", "ct.id"),
        ("title", "r.title"),
        ("description", "r.description"),
        ("category", "r.category"),
        ("severity", "r.severity"),
        ("channel", "r.channel"),
        ("received_at", "r.received_at"),
        ("status", "coalesce(r.status, 'open')"),
        (
            "resolution",
            "CASE WHEN r.status = 'closed' THEN coalesce(r.resolution, 'Closed (imported)')"
            " ELSE r.resolution END",
        ),
        ("first_responded_at", "r.responded_at"),
        ("resolved_at", "CASE WHEN r.status = 'closed' THEN r.responded_at END"),
        (
            "active_time",
            "CASE WHEN r.status = 'closed' THEN r.responded_at - r.received_at"
            " ELSE interval '0' END",
        ),
        (
            "clock_since",
            "CASE WHEN r.status = 'closed' THEN r.responded_at ELSE r.received_at END",
        ),
        ("clock_running", "coalesce(r.status, 'open') = 'open'"),
        (
            "assignee_id",
            "(SELECT a.manager_id FROM assignments a WHERE a.client_id = ct.id"
            " AND a.role IN ('primary', 'cover') AND a.period @> r.received_at"
            " ORDER BY a.role = 'cover' DESC LIMIT 1)",
        ),
    ),
    ("title", "description", "category", "severity"),
    "c.client_id",
    seconds=("active_time",),
    on_create=COMPLAINTS_HISTORY,
)

# The credited manager, when the row names none: the client's cover, else primary, at
# closed_at.
_RESPONSIBLE = (
    "(SELECT a.manager_id FROM assignments a WHERE a.client_id = ct.id"
    " AND a.role IN ('primary', 'cover') AND a.period @> r.closed_at"
    " ORDER BY a.role = 'cover' DESC LIMIT 1)"
)
SALES_CHECKS = [
    _known("client_ref", "clients", "client"),
    _known("credited_manager_ref", "managers", "manager"),
    "UPDATE import_rows r SET error = 'client ' || r.client_ref || ' had no responsible"
    " manager at ' || r.closed_at || '; give credited_manager_ref'"
    f" FROM clients ct WHERE {OK} AND r.credited_manager_ref IS NULL"
    f" AND ct.external_ref = r.client_ref AND {_RESPONSIBLE} IS NULL",
]
SALES = Target(
    "sales",
    "JOIN clients ct ON ct.external_ref = r.client_ref"
    " LEFT JOIN managers mt ON mt.external_ref = r.credited_manager_ref",
    (
        ("client_id", "ct.id"),
        ("amount", "r.amount"),
        ("currency", "r.currency"),
        ("closed_at", "r.closed_at"),
        ("kind", "r.kind"),
        ("product", "r.product"),
        ("credited_manager_id", f"coalesce(mt.id, {_RESPONSIBLE})"),
    ),
    ("client_id", "amount", "currency", "closed_at", "kind", "product", "credited_manager_id"),
    "c.client_id",
    money=(("amount", "currency"),),
)

QUOTAS_CHECKS = [
    *_resolve("manager_ref", "manager_id", "managers", "manager"),
    "UPDATE import_rows r SET error = 'overlaps quota ' || coalesce(q.external_ref, q.id::text)"
    f" FROM quotas q WHERE {OK} AND q.manager_id = r.manager_id AND q.metric = r.metric"
    " AND q.external_ref IS DISTINCT FROM r.external_ref"
    " AND q.period && tstzrange(r.period_start, r.period_end, '[)')",
]
QUOTAS_PAIRS = (
    "SELECT x.row_no, r.row_no, 'overlaps the quota of row ' || x.row_no"
    " FROM import_rows r JOIN import_rows x ON x.manager_id = r.manager_id"
    " AND x.metric = r.metric AND x.row_no < r.row_no"
    f" WHERE {OK} AND x.error IS NULL AND tstzrange(x.period_start, x.period_end, '[)')"
    " && tstzrange(r.period_start, r.period_end, '[)')"
)
QUOTAS = Target(
    "quotas",
    "",
    (
        ("manager_id", "r.manager_id"),
        ("metric", "r.metric"),
        ("period_label", "r.period"),
        ("period_start", "r.period_start"),
        ("period_end", "r.period_end"),
        ("target_amount", "r.target_amount"),
        ("target_currency", "r.target_currency"),
        ("target_count", "r.target_count"),
        ("channel", "r.channel"),
    ),
    (
        "manager_id",
        "metric",
        "period_label",
        "period_start",
        "period_end",
        "target_amount",
        "target_currency",
        "target_count",
        "channel",
    ),
    "NULL::uuid",
    money=(("target_amount", "target_currency"),),
)

MANAGERS_WRITE = write(MANAGERS)
CLIENTS_WRITE = write(CLIENTS)
ASSIGNMENTS_WRITE = write(ASSIGNMENTS)
INTERACTIONS_WRITE = write(INTERACTIONS)
COMPLAINTS_WRITE = write(COMPLAINTS)
SALES_WRITE = write(SALES)
QUOTAS_WRITE = write(QUOTAS)
MANAGERS_RELINK = relink(MANAGERS)
CLIENTS_RELINK = relink(CLIENTS)
