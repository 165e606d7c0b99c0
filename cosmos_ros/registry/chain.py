"""Tamper-evidence for the registry database: every row is hashed into a chain kept beside it.

Why: editing the SQLite file by hand (a revoked version set back to approved, bytes flipped in a
row's JSON) passed ``verify``, and ``predict`` then loaded the edited record. Now every record,
status change, evaluation and provenance row gets a chain entry when it is written: the sha256 of
the row as stored, linked to the previous entry's hash. ``verify`` walks the whole chain and every
row; loading a record (``get``, and so the loading policy) re-checks that record's own rows and
that its status is the one its last status change recorded. The chain has no secret key: it
catches edits made without rewriting the chain, not a forger who recomputes it (signatures are
the answer to that).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from cosmos_ros.registry.records import RegistryError

GENESIS = "0" * 64
SCHEMA = """
CREATE TABLE IF NOT EXISTS chain (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL UNIQUE,
    digest TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS chain_no_update BEFORE UPDATE ON chain
BEGIN SELECT RAISE(ABORT, 'chain is append-only'); END;
CREATE TRIGGER IF NOT EXISTS chain_no_delete BEFORE DELETE ON chain
BEGIN SELECT RAISE(ABORT, 'chain is append-only'); END;
"""
#: table -> (subject prefix, columns the digest leaves out). ``adapters.status`` changes by design;
#: it is checked against the chained status changes instead.
_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "adapters": ("adapter", ("status",)),
    "status_changes": ("status", ()),
    "evaluations": ("evaluation", ()),
    "provenance": ("provenance", ()),
}


class ChainError(RegistryError):
    """A database row that does not match its chain entry (edited outside the registry)."""


def _subject(table: str, row: Any) -> str:
    prefix = _TABLES[table][0]
    key = f"{prefix}:{row['name']}@{row['version']}"
    return f"{key}:{row['seq']}" if "seq" in row.keys() else key


def row_digest(table: str, row: Any) -> str:
    skip = _TABLES[table][1]
    data = {key: row[key] for key in row.keys() if key not in skip}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def entry_hash(prev: str, subject: str, digest: str) -> str:
    return hashlib.sha256(f"{prev}\n{subject}\n{digest}".encode()).hexdigest()


def append(conn: sqlite3.Connection, table: str, rowid: int) -> None:
    """Chain the row just written (call inside the write transaction that wrote it)."""
    row = conn.execute(f"SELECT * FROM {table} WHERE rowid = ?", (rowid,)).fetchone()
    last = conn.execute("SELECT hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    prev = last[0] if last is not None else GENESIS
    subject, digest = _subject(table, row), row_digest(table, row)
    conn.execute(
        "INSERT INTO chain (subject, digest, prev, hash) VALUES (?, ?, ?, ?)",
        (subject, digest, prev, entry_hash(prev, subject, digest)),
    )


def adopt_unchained(conn: sqlite3.Connection) -> int:
    """Chain the rows of a registry written before the chain existed (once, on first open)."""
    if conn.execute("SELECT 1 FROM chain LIMIT 1").fetchone() is not None:
        return 0
    count = 0
    for table in _TABLES:
        order = "seq" if table != "adapters" and table != "provenance" else "name, version"
        for (rowid,) in conn.execute(f"SELECT rowid FROM {table} ORDER BY {order}").fetchall():
            append(conn, table, rowid)
            count += 1
    return count


def _row_problems(conn: sqlite3.Connection, table: str, rows: list[Any], where: str) -> list[str]:
    problems = []
    for row in rows:
        subject = _subject(table, row)
        entry = conn.execute("SELECT * FROM chain WHERE subject = ?", (subject,)).fetchone()
        if entry is None:
            problems.append(f"{where}: row {subject} has no chain entry (added outside the registry)")
        elif entry["digest"] != row_digest(table, row):
            problems.append(
                f"{where}: row {subject} differs from what was written (edited outside the registry)"
            )
        elif entry["hash"] != entry_hash(entry["prev"], subject, entry["digest"]):
            problems.append(f"{where}: chain entry {entry['seq']} for {subject} is damaged")
    return problems


def _status_problem(conn: sqlite3.Connection, adapter: Any, where: str) -> str | None:
    last = conn.execute(
        "SELECT to_status FROM status_changes WHERE name = ? AND version = ? ORDER BY seq DESC LIMIT 1",
        (adapter["name"], adapter["version"]),
    ).fetchone()
    recorded = last[0] if last is not None else None
    if recorded != adapter["status"]:
        return (
            f"{where}: {adapter['name']}@{adapter['version']} has status {adapter['status']!r}, but its last "
            f"recorded status change says {recorded!r} (edited outside the registry)"
        )
    return None


def record_problems(conn: sqlite3.Connection, adapter: Any, where: str) -> list[str]:
    """What is wrong with one record's rows (its adapter row, history, evaluations, provenance)."""
    key = (adapter["name"], adapter["version"])
    problems = _row_problems(conn, "adapters", [adapter], where)
    for table in ("status_changes", "evaluations", "provenance"):
        rows = conn.execute(f"SELECT * FROM {table} WHERE name = ? AND version = ?", key).fetchall()
        problems += _row_problems(conn, table, rows, where)
    prefix = f"status:{adapter['name']}@{adapter['version']}:"
    chained = conn.execute(
        "SELECT COUNT(*) FROM chain WHERE substr(subject, 1, ?) = ?", (len(prefix), prefix)
    ).fetchone()[0]
    present = conn.execute(
        "SELECT COUNT(*) FROM status_changes WHERE name = ? AND version = ?", key
    ).fetchone()[0]
    if chained != present:
        problems.append(f"{where}: {key[0]}@{key[1]} has {present} status changes, {chained} were written")
    status = _status_problem(conn, adapter, where)
    return problems + ([status] if status else [])


def check_record(conn: sqlite3.Connection, adapter: Any, where: str) -> None:
    """Refuse a record whose rows do not match the chain (what loading calls)."""
    problems = record_problems(conn, adapter, where)
    if problems:
        raise ChainError(f"{problems[0]}; refusing to use it (run 'cosmos-ros adapters verify')")


def verify(conn: sqlite3.Connection, where: str) -> list[tuple[str, str]]:
    """Every chain link and every row: ``(subject, message)`` for each problem found."""
    found: list[tuple[str, str]] = []
    prev = GENESIS
    subjects: set[str] = set()
    for entry in conn.execute("SELECT * FROM chain ORDER BY seq").fetchall():
        subjects.add(entry["subject"])
        if entry["prev"] != prev or entry["hash"] != entry_hash(
            entry["prev"], entry["subject"], entry["digest"]
        ):
            found.append(
                (entry["subject"], f"{where}: chain entry {entry['seq']} ({entry['subject']}) is broken")
            )
        prev = entry["hash"]
    rows_seen: set[str] = set()
    for table in _TABLES:
        for row in conn.execute(f"SELECT * FROM {table}").fetchall():
            subject = _subject(table, row)
            rows_seen.add(subject)
            found += [(subject, message) for message in _row_problems(conn, table, [row], where)]
            if table == "adapters" and (status := _status_problem(conn, row, where)):
                found.append((subject, status))
    for subject in sorted(subjects - rows_seen):
        found.append(
            (subject, f"{where}: row {subject} was written but is gone (deleted outside the registry)")
        )
    return found
