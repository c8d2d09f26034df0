"""Set-based SQL of the importer, per resource, over the staging table ``import_rows``.

``CHECKS`` mark rows that cannot be written (``error``) — unresolved references,
conflicts with stored rows or with earlier rows of the same file — before anything is
written, so constraint violations are the exception. ``UPSERT`` writes the rows of the
current batch (``in_batch``) that passed, keyed on ``external_ref``: a new ref inserts,
a known one updates only when something differs; it returns ``id``, ``created`` and
``row_no``. ``AFTER`` runs once the batch is in (e.g. parents and leads named by refs
that may be in the same file).
"""

from __future__ import annotations

OK = "r.error IS NULL"


def _resolve(ref: str, target: str, table: str, what: str) -> list[str]:
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

_AUDIT = """
, audited AS (
    INSERT INTO audit_events (actor, roles, source, request_id, resource, resource_id,
                              action, client_id, changes)
    SELECT :actor, CAST(:roles AS text[]), 'import', :request_id, '{table}', u.id::text,
           CASE WHEN u.created THEN 'create' ELSE 'update' END, u.client_id,
           jsonb_build_object('import_row', jsonb_build_array(NULL, u.row_no),
                              'import_id', jsonb_build_array(NULL, CAST(:import_id AS text)))
    FROM joined u)
SELECT id, created, row_no FROM joined
"""


def _upsert(table: str, columns: list[str], select: str, updatable: list[str], client: str) -> str:
    cols = ", ".join(columns)
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in updatable)
    old = ", ".join(f"{table}.{c}" for c in updatable)
    new = ", ".join(f"EXCLUDED.{c}" for c in updatable)
    return (
        f"WITH upserted AS (INSERT INTO {table} AS {table} ({cols}, version, created_by,"
        f" updated_by) {select}"
        f" ON CONFLICT (external_ref) DO UPDATE SET {sets}, version = {table}.version + 1,"
        f" updated_at = now(), updated_by = EXCLUDED.updated_by"
        f" WHERE ({old}) IS DISTINCT FROM ({new})"
        f" RETURNING {table}.id, (xmax = 0) AS created, {table}.external_ref,"
        f" {client} AS client_id)"
        ", joined AS (SELECT u.id, u.created, r.row_no, u.external_ref, u.client_id"
        " FROM upserted u"
        " JOIN import_rows r ON r.external_ref = u.external_ref AND r.error IS NULL"
        " AND r.in_batch)"
        + _AUDIT.replace("FROM upserted u", "FROM joined u")
        .replace(
            "SELECT id, created, row_no FROM upserted", "SELECT id, created, row_no FROM joined"
        )
        .format(table=table)
    )


BATCH = "r.error IS NULL AND r.in_batch"

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
MANAGERS_UPSERT = _upsert(
    "managers",
    ["id", "external_ref", "email", "full_name", "role", "time_zone", "region", "active"],
    "SELECT gen_random_uuid(), r.external_ref, r.email, r.full_name,"
    " coalesce(r.role, 'account_manager'), coalesce(r.time_zone, 'UTC'), r.region,"
    f" coalesce(r.active, true), 1, :actor, :actor FROM import_rows r WHERE {BATCH}",
    ["email", "full_name", "role", "time_zone", "region", "active"],
    "NULL::uuid",
)
MANAGERS_AFTER = (
    "UPDATE managers m SET reports_to_id = lead.id, version = m.version + 1,"
    " updated_at = now(), updated_by = :actor"
    " FROM import_rows r JOIN managers lead ON lead.external_ref = r.reports_to_ref"
    f" WHERE {BATCH} AND m.external_ref = r.external_ref"
    " AND m.reports_to_id IS DISTINCT FROM lead.id RETURNING m.id"
)

CLIENTS_CHECKS = [
    f"UPDATE import_rows r SET error = 'parent_ref cannot be the client itself'"
    f" WHERE {OK} AND r.parent_ref = r.external_ref",
    _ref_in_db_or_file("parent_ref", "clients", "client"),
    _no_cycle("clients", "parent_ref", "parent_id", "account"),
]
CLIENTS_UPSERT = _upsert(
    "clients",
    [
        "id",
        "external_ref",
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
    ],
    "SELECT gen_random_uuid(), r.external_ref, r.name, r.legal_name, r.industry, r.segment,"
    " coalesce(r.lifecycle_stage, 'prospect'), r.country, r.currency, r.time_zone,"
    " r.renewal_date, r.annual_value, r.annual_value_currency, 1, :actor, :actor"
    f" FROM import_rows r WHERE {BATCH}",
    [
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
    ],
    "clients.id",
)
CLIENTS_AFTER = (
    "UPDATE clients c SET parent_id = p.id, version = c.version + 1, updated_at = now(),"
    " updated_by = :actor FROM import_rows r JOIN clients p ON p.external_ref = r.parent_ref"
    f" WHERE {BATCH} AND c.external_ref = r.external_ref AND c.parent_id IS DISTINCT FROM p.id"
    " RETURNING c.id"
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
ASSIGNMENTS_UPSERT = _upsert(
    "assignments",
    ["id", "external_ref", "client_id", "manager_id", "role", "starts_at", "ends_at", "reason"],
    "SELECT gen_random_uuid(), r.external_ref, r.client_id, r.manager_id, r.role,"
    f" r.starts_at, r.ends_at, r.reason, 1, :actor, :actor FROM import_rows r WHERE {BATCH}",
    ["client_id", "manager_id", "role", "starts_at", "ends_at", "reason"],
    "assignments.client_id",
)

INTERACTIONS_CHECKS = [
    *_resolve("client_ref", "client_id", "clients", "client"),
    *_resolve("manager_ref", "manager_id", "managers", "manager"),
]
INTERACTIONS_UPSERT = _upsert(
    "interactions",
    [
        "id",
        "external_ref",
        "client_id",
        "manager_id",
        "channel",
        "direction",
        "occurred_at",
        "duration_minutes",
        "subject",
        "notes",
        "sentiment",
    ],
    "SELECT gen_random_uuid(), r.external_ref, r.client_id, r.manager_id, r.channel,"
    " r.direction, r.occurred_at, r.duration_minutes, r.subject, r.notes, r.sentiment,"
    f" 1, :actor, :actor FROM import_rows r WHERE {BATCH}",
    [
        "client_id",
        "manager_id",
        "channel",
        "direction",
        "occurred_at",
        "duration_minutes",
        "subject",
        "notes",
        "sentiment",
    ],
    "interactions.client_id",
)

COMPLAINTS_CHECKS = [
    *_resolve("client_ref", "client_id", "clients", "client"),
    "UPDATE import_rows r SET error = 'responded_at ' || r.responded_at || ' is before"
    f" received_at ' || r.received_at WHERE {OK} AND r.responded_at < r.received_at",
    "UPDATE import_rows r SET error = 'a closed complaint needs responded_at'"
    f" WHERE {OK} AND r.status = 'closed' AND r.responded_at IS NULL",
]
# A new complaint gets its status history: open at received_at and, when closed, the
# legal path acknowledged → in_progress → resolved → closed at responded_at. A known ref
# only updates its descriptive fields (history is never rewritten).
COMPLAINTS_UPSERT = _upsert(
    "complaints",
    [
        "id",
        "external_ref",
        "client_id",
        "title",
        "description",
        "category",
        "severity",
        "channel",
        "received_at",
        "status",
        "resolution",
        "first_responded_at",
        "resolved_at",
        "active_time",
        "clock_since",
        "clock_running",
        "assignee_id",
    ],
    "SELECT gen_random_uuid(), r.external_ref, r.client_id, r.title, r.description,"
    " r.category, r.severity, r.channel, r.received_at, coalesce(r.status, 'open'),"
    " CASE WHEN r.status = 'closed' THEN coalesce(r.resolution, 'Closed (imported)')"
    " ELSE r.resolution END, r.responded_at,"
    " CASE WHEN r.status = 'closed' THEN r.responded_at END,"
    " CASE WHEN r.status = 'closed' THEN r.responded_at - r.received_at ELSE interval '0' END,"
    " CASE WHEN r.status = 'closed' THEN r.responded_at ELSE r.received_at END,"
    " coalesce(r.status, 'open') = 'open',"
    " (SELECT a.manager_id FROM assignments a WHERE a.client_id = r.client_id"
    " AND a.role IN ('primary', 'cover') AND a.period @> r.received_at"
    " ORDER BY a.role = 'cover' DESC LIMIT 1),"
    f" 1, :actor, :actor FROM import_rows r WHERE {BATCH}",
    ["title", "description", "category", "severity"],
    "complaints.client_id",
)
COMPLAINTS_HISTORY = (
    "INSERT INTO complaint_transitions (id, complaint_id, client_id, from_status, to_status,"
    " at, actor) SELECT gen_random_uuid(), c.id, c.client_id, s.from_status, s.to_status,"
    " s.at, :actor FROM complaints c JOIN unnest(CAST(:ids AS uuid[])) AS n(id) ON n.id = c.id,"
    " LATERAL (VALUES (1, NULL, 'open', c.received_at),"
    " (2, 'open', 'acknowledged', c.first_responded_at),"
    " (3, 'acknowledged', 'in_progress', c.first_responded_at),"
    " (4, 'in_progress', 'resolved', c.first_responded_at),"
    " (5, 'resolved', 'closed', c.first_responded_at)) AS s(step, from_status, to_status, at)"
    " WHERE s.step = 1 OR c.status = 'closed' ORDER BY c.id, s.step"
)

SALES_CHECKS = [
    *_resolve("client_ref", "client_id", "clients", "client"),
    *_resolve("credited_manager_ref", "manager_id", "managers", "manager"),
    "UPDATE import_rows r SET manager_id = (SELECT a.manager_id FROM assignments a"
    " WHERE a.client_id = r.client_id AND a.role IN ('primary', 'cover')"
    " AND a.period @> r.closed_at ORDER BY a.role = 'cover' DESC LIMIT 1)"
    f" WHERE {OK} AND r.manager_id IS NULL",
    "UPDATE import_rows r SET error = 'client ' || r.client_ref || ' had no responsible"
    " manager at ' || r.closed_at || '; give credited_manager_ref'"
    f" WHERE {OK} AND r.manager_id IS NULL",
]
SALES_UPSERT = _upsert(
    "sales",
    [
        "id",
        "external_ref",
        "client_id",
        "amount",
        "currency",
        "closed_at",
        "kind",
        "product",
        "credited_manager_id",
    ],
    "SELECT gen_random_uuid(), r.external_ref, r.client_id, r.amount, r.currency, r.closed_at,"
    f" r.kind, r.product, r.manager_id, 1, :actor, :actor FROM import_rows r WHERE {BATCH}",
    ["client_id", "amount", "currency", "closed_at", "kind", "product", "credited_manager_id"],
    "sales.client_id",
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
QUOTAS_UPSERT = _upsert(
    "quotas",
    [
        "id",
        "external_ref",
        "manager_id",
        "metric",
        "period_label",
        "period_start",
        "period_end",
        "target_amount",
        "target_currency",
        "target_count",
        "channel",
    ],
    "SELECT gen_random_uuid(), r.external_ref, r.manager_id, r.metric, r.period,"
    " r.period_start, r.period_end, r.target_amount, r.target_currency, r.target_count,"
    f" r.channel, 1, :actor, :actor FROM import_rows r WHERE {BATCH}",
    [
        "manager_id",
        "metric",
        "period_label",
        "period_start",
        "period_end",
        "target_amount",
        "target_currency",
        "target_count",
        "channel",
    ],
    "NULL::uuid",
)
