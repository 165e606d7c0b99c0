"""The registry database's schema: tables, triggers that keep rows append-only, and its creation.

Split from ``sqlite_store.py`` so the store's module holds behaviour, not DDL.
"""

from __future__ import annotations

import sqlite3

from cosmos_ros.registry import chain, validation
from cosmos_ros.registry.records import STATUSES, utc_now

DB_NAME = "registry.sqlite3"
SCHEMA_VERSION = "1"
BUSY_TIMEOUT_MS = 60_000
#: Fields of adapter_metadata.json (and CLI overrides) that a record takes over.
METADATA_FIELDS = validation.REGISTRATION_FIELDS
_IMMUTABLE_COLUMNS = (
    "name, version, artifact_sha256, artifact_size, adapter_type, rank, alpha, target_modules, "
    "base_fingerprint, dataset_manifest_sha256, dataset_path, training_config, code_version, metrics, "
    "parent, created_by, created_at, note, tensor_count"
)
_STATUS_CHECK = ", ".join(f"'{s}'" for s in STATUSES)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS adapters (
    name TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    artifact_sha256 TEXT NOT NULL CHECK (length(artifact_sha256) = 64),
    artifact_size INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({_STATUS_CHECK})),
    adapter_type TEXT,
    rank INTEGER,
    alpha REAL,
    target_modules TEXT NOT NULL DEFAULT '[]',
    base_fingerprint TEXT,
    dataset_manifest_sha256 TEXT,
    dataset_path TEXT,
    training_config TEXT NOT NULL DEFAULT '{{}}',
    code_version TEXT,
    metrics TEXT NOT NULL DEFAULT '{{}}',
    parent TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    note TEXT,
    tensor_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS adapters_by_artifact ON adapters (artifact_sha256);
CREATE TABLE IF NOT EXISTS status_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    note TEXT,
    force_reason TEXT,
    FOREIGN KEY (name, version) REFERENCES adapters (name, version)
);
CREATE TABLE IF NOT EXISTS evaluations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    results TEXT NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    FOREIGN KEY (name, version) REFERENCES adapters (name, version)
);
CREATE TABLE IF NOT EXISTS provenance (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (name, version),
    FOREIGN KEY (name, version) REFERENCES adapters (name, version)
);
CREATE TRIGGER IF NOT EXISTS provenance_no_update BEFORE UPDATE ON provenance
BEGIN SELECT RAISE(ABORT, 'provenance is immutable'); END;
CREATE TRIGGER IF NOT EXISTS provenance_no_delete BEFORE DELETE ON provenance
BEGIN SELECT RAISE(ABORT, 'provenance is immutable'); END;
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    adapter_id TEXT,
    details TEXT NOT NULL DEFAULT '{{}}'
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS status_changes_no_update BEFORE UPDATE ON status_changes
BEGIN SELECT RAISE(ABORT, 'status_changes is append-only'); END;
CREATE TRIGGER IF NOT EXISTS status_changes_no_delete BEFORE DELETE ON status_changes
BEGIN SELECT RAISE(ABORT, 'status_changes is append-only'); END;
CREATE TRIGGER IF NOT EXISTS evaluations_no_update BEFORE UPDATE ON evaluations
BEGIN SELECT RAISE(ABORT, 'evaluations is append-only'); END;
CREATE TRIGGER IF NOT EXISTS evaluations_no_delete BEFORE DELETE ON evaluations
BEGIN SELECT RAISE(ABORT, 'evaluations is append-only'); END;
CREATE TRIGGER IF NOT EXISTS adapters_immutable BEFORE UPDATE OF {_IMMUTABLE_COLUMNS} ON adapters
BEGIN SELECT RAISE(ABORT, 'registered adapters are immutable (only status changes)'); END;
CREATE TRIGGER IF NOT EXISTS adapters_no_delete BEFORE DELETE ON adapters
BEGIN SELECT RAISE(ABORT, 'registered adapters are never deleted (revoke them)'); END;
"""


def create_tables(conn: sqlite3.Connection) -> None:
    for statement in (_SCHEMA + chain.SCHEMA).split(";\n"):
        if statement.strip():
            conn.execute(statement)


def create_schema(conn: sqlite3.Connection) -> None:
    """A new database: the tables and the schema version (see :func:`dbfile.create_database`)."""
    create_tables(conn)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
    conn.execute("INSERT INTO meta (key, value) VALUES ('chain', ?)", (utc_now(),))
