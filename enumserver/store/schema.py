"""The store schema: tables, indexes and the version, in one place.

Licences (TSIG keys of publishing systems) and billable events were added without a version
change: ``CREATE ... IF NOT EXISTS`` adds them to an older store on the next ``zonetools init``
(or any licence command).
"""

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS zones (
    name TEXT PRIMARY KEY,
    apex TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('tier1', 'tier2')),
    style TEXT NOT NULL DEFAULT 'naptr' CHECK (style IN ('referral', 'naptr')),
    environment TEXT NOT NULL DEFAULT 'production' CHECK (environment IN ('production', 'test')),
    operator TEXT REFERENCES operators(ty),
    mname TEXT NOT NULL,
    rname TEXT NOT NULL,
    serial INTEGER NOT NULL DEFAULT 1,
    refresh INTEGER NOT NULL DEFAULT 3600,
    retry INTEGER NOT NULL DEFAULT 600,
    expire INTEGER NOT NULL DEFAULT 1209600,
    minimum INTEGER NOT NULL DEFAULT 60,
    soa_ttl INTEGER NOT NULL DEFAULT 300,
    ns TEXT NOT NULL,
    ns_ttl INTEGER NOT NULL DEFAULT 3600
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS operators (
    ty TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'TY' CHECK (kind IN ('TY', 'PO')),
    host_ty TEXT REFERENCES operators(ty),
    routing_number TEXT,
    sip_domain TEXT,
    joined TEXT,
    openstack INTEGER NOT NULL DEFAULT 0,
    CHECK ((kind = 'PO') = (host_ty IS NOT NULL))
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tier2_servers (
    ty TEXT NOT NULL REFERENCES operators(ty),
    host TEXT NOT NULL,
    ipv4 TEXT,
    ipv6 TEXT,
    ttl INTEGER NOT NULL DEFAULT 3600,
    PRIMARY KEY (ty, host)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ranges (
    prefix TEXT PRIMARY KEY,
    holder TEXT NOT NULL REFERENCES operators(ty),
    min_digits INTEGER NOT NULL,
    max_digits INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ported (
    number TEXT PRIMARY KEY,
    recipient TEXT NOT NULL REFERENCES operators(ty),
    donor TEXT REFERENCES operators(ty),
    ported_at TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS routes (
    id INTEGER PRIMARY KEY,
    ty TEXT NOT NULL REFERENCES operators(ty),
    number TEXT,
    "order" INTEGER NOT NULL,
    preference INTEGER NOT NULL,
    flags TEXT NOT NULL,
    service TEXT NOT NULL,
    regexp TEXT NOT NULL,
    replacement TEXT NOT NULL DEFAULT '.',
    ttl INTEGER NOT NULL DEFAULT 300
);
CREATE INDEX IF NOT EXISTS routes_by_number ON routes (number) WHERE number IS NOT NULL;
CREATE INDEX IF NOT EXISTS routes_templates ON routes (ty) WHERE number IS NULL;
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    command TEXT NOT NULL,
    licence TEXT,
    message TEXT
);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY,
    serial INTEGER NOT NULL,
    audit_id INTEGER REFERENCES audit(id),
    entity TEXT NOT NULL,
    key TEXT NOT NULL,
    old TEXT,
    new TEXT
);
CREATE INDEX IF NOT EXISTS journal_by_serial ON journal (serial);
CREATE TABLE IF NOT EXISTS licences (
    id TEXT PRIMARY KEY,
    ty TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('production', 'test')),
    issued TEXT NOT NULL,
    expires TEXT,
    revoked TEXT,
    generation INTEGER NOT NULL DEFAULT 1,
    key_name TEXT NOT NULL UNIQUE,
    algorithm TEXT NOT NULL DEFAULT 'hmac-sha256',
    secret TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS billable_events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    ty TEXT NOT NULL,
    item TEXT NOT NULL,
    audit_id INTEGER REFERENCES audit(id),
    licence TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS billable_events_by_time ON billable_events (at);
-- A change to a TY's Tier2 server information (servers before and after, whatever the path:
-- CLI, change-set file, DNS UPDATE) is a billed service request; setting the first servers
-- (joining) and removing an operator are not.
CREATE TRIGGER IF NOT EXISTS tier2_change_is_billed AFTER INSERT ON journal
WHEN NEW.entity = 'tier2_servers' AND NEW.old IS NOT NULL AND NEW.new IS NOT NULL
BEGIN
    INSERT INTO billable_events (at, ty, item, audit_id, licence, detail)
    SELECT at, json_extract(NEW.key, '$[0]'), 'tier2_change', id, licence, NEW.new
    FROM audit WHERE id = NEW.audit_id;
END;
"""

# Schedules of route sets (docs/service-numbers.md): one per number or range prefix, owned by
# the operator that serves it; the body is the schedule's canonical JSON document.
SCHEDULES_TABLE = """CREATE TABLE IF NOT EXISTS schedules (
    scope TEXT NOT NULL CHECK (scope IN ('number', 'range')),
    target TEXT NOT NULL,
    ty TEXT NOT NULL REFERENCES operators(ty),
    body TEXT NOT NULL,
    PRIMARY KEY (scope, target)
) WITHOUT ROWID"""
SCHEMA += SCHEDULES_TABLE + ";\n"

# The meta key of the moment zone transfers evaluate schedules at (enumserver/ticks.py).
MOMENT_KEY = "schedule_moment"
