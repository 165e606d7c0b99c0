"""The registry's database file: created whole or not at all, and refused when it is damaged.

Why: SQLite opens a 0-byte file as a new, empty database, so a truncated registry came back
silently empty and ``gc`` then deleted the artifacts of every adapter it no longer knew. Here a
new database is built under a temporary name and linked into place complete, so a database file
that is empty, shorter than its header says, or not SQLite at all is damage, and an error naming
the file, never a reason to start afresh.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

from cosmos_ros.registry.records import RegistryError

SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_BYTES = 100
_RESTORE = "restore it from a backup (the registry never recreates a damaged database)"


class DatabaseFileError(RegistryError):
    """The registry's database file is empty, truncated, missing beside its artifacts, or not SQLite."""


def check_database_file(db_path: Path, has_artifacts: bool) -> bool:
    """Refuse a damaged database file; returns whether it exists (False: a new registry may be made).

    A missing database beside stored artifacts is refused too: the records were lost, and a new,
    empty database would make every artifact an orphan for ``gc``.
    """
    if not db_path.exists():
        if has_artifacts:
            raise DatabaseFileError(f"{db_path} is missing but the registry holds artifacts; {_RESTORE}")
        return False
    if not db_path.is_file():
        raise DatabaseFileError(f"{db_path} is not a file; a registry database is a SQLite file")
    size = db_path.stat().st_size
    if size == 0:
        raise DatabaseFileError(f"{db_path} is empty (0 bytes): the database was truncated; {_RESTORE}")
    with open(db_path, "rb") as fh:
        header = fh.read(_HEADER_BYTES)
    if not header.startswith(SQLITE_MAGIC):
        raise DatabaseFileError(f"{db_path} is not a SQLite database (wrong header); {_RESTORE}")
    if len(header) < _HEADER_BYTES:
        raise DatabaseFileError(f"{db_path} is truncated ({size} bytes, shorter than a header); {_RESTORE}")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_size_valid = header[24:28] == header[92:96] and pages > 0
    if header_size_valid and size < pages * page_size:
        raise DatabaseFileError(
            f"{db_path} is truncated ({size} bytes, its header says {pages} pages of {page_size}); {_RESTORE}"
        )
    return True


def create_database(db_path: Path, initialise: Callable[[sqlite3.Connection], None]) -> None:
    """Build a new database under a temporary name, then link it into place (no-op if one appeared)."""
    # ``.*.part``: what ``gc`` removes and ``verify`` reports, should a killed process leave it.
    tmp = db_path.with_name(f".{db_path.name}.{uuid.uuid4().hex}.part")
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            initialise(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process created it first: use theirs
            os.link(tmp, db_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def quick_check(conn: sqlite3.Connection, db_path: Path) -> None:
    """Refuse to go on (``gc``) on a database SQLite itself finds damaged."""
    try:
        rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise DatabaseFileError(f"{db_path} is damaged ({exc}); {_RESTORE}") from exc
    if rows != ["ok"]:
        raise DatabaseFileError(f"{db_path} is damaged ({'; '.join(rows[:3])}); {_RESTORE}")


def describe(exc: sqlite3.DatabaseError, db_path: Path) -> DatabaseFileError:
    """A SQLite error while opening or writing, as a one-line error naming the file."""
    text = str(exc)
    if "readonly" in text or "read-only" in text or not os.access(db_path.parent, os.W_OK):
        return DatabaseFileError(
            f"{db_path} is read-only ({text}); the registry needs write access to {db_path.parent} "
            "(SQLite's write-ahead log and the audit log live there), even to read and export"
        )
    if "locked" in text or "busy" in text:
        return DatabaseFileError(f"{db_path} is locked by another process ({text}); try again")
    return DatabaseFileError(f"{db_path} cannot be read as a registry database ({text}); {_RESTORE}")
