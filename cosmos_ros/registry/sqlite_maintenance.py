"""The store's maintenance path: ``verify`` (rows, chain and artifacts) and ``gc``.

A mixin of :class:`~cosmos_ros.registry.sqlite_store.SqliteRegistry`, split from it so the store's
module stays readable; it uses the store's connection, lock and transactions.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from cosmos_ros.progress import ProgressCallback, Stopwatch
from cosmos_ros.registry import chain, dbfile
from cosmos_ros.registry.artifacts import ArtifactStore, sha256_file
from cosmos_ros.registry.records import Problem
from cosmos_ros.registry.site_policy import policy_path
from cosmos_ros.registry.store import default_actor


class MaintenanceMixin:
    """``verify`` and ``gc`` over the store's connection (see ``SqliteRegistry``)."""

    root: Path
    db_path: Path
    artifacts: ArtifactStore
    _conn: sqlite3.Connection
    _lock: threading.RLock

    # provided by SqliteRegistry (annotations only, for type checkers)
    _write: Any
    _read: Any
    _audit: Any
    policy_problem: Any

    # ---- integrity ------------------------------------------------------------------------------
    def verify(self, progress: ProgressCallback | None = None) -> list[Problem]:
        problems: list[Problem] = []
        with self._lock:
            check = self._conn.execute("PRAGMA integrity_check").fetchall()
            rows = self._conn.execute(
                "SELECT artifact_sha256, artifact_size, group_concat(name || '@' || version, ', ') AS ids"
                " FROM adapters GROUP BY artifact_sha256, artifact_size ORDER BY artifact_sha256"
            ).fetchall()
        if [tuple(r) for r in check] != [("ok",)]:
            problems.append(Problem("database", str(self.db_path), "; ".join(str(r[0]) for r in check)))
        with self._read() as conn:
            problems += [
                Problem("database_row", subject, message)
                for subject, message in chain.verify(conn, str(self.db_path))
            ]
        hand_edit = self.policy_problem()
        if hand_edit is not None:
            problems.append(Problem("policy_changed", str(policy_path(self.root)), hand_edit))
        watch = Stopwatch(progress, "verify", len(rows))
        referenced: set[str] = set()
        for index, row in enumerate(rows):
            sha, ids = row["artifact_sha256"], row["ids"]
            referenced.add(sha)
            path = self.artifacts.path_for(sha)
            if not path.is_file():
                problems.append(Problem("missing_artifact", ids, f"{path} is missing (needed by {ids})"))
            else:
                digest, size = sha256_file(path)
                if digest != sha:
                    problems.append(
                        Problem(
                            "hash_mismatch",
                            ids,
                            f"{path} hashes to {digest} (tampered or damaged; used by {ids})",
                        )
                    )
                elif size != row["artifact_size"]:
                    problems.append(
                        Problem(
                            "size_mismatch", ids, f"{path} has {size} bytes, {row['artifact_size']} recorded"
                        )
                    )
            watch.report(index + 1, ids)
        for blob in self.artifacts.iter_blobs():
            if self.artifacts.digest_of(blob) not in referenced:
                problems.append(
                    Problem("orphan_blob", str(blob), f"{blob} belongs to no record ('gc' removes it)")
                )
        for temp in self.artifacts.iter_temp_files():
            problems.append(Problem("temp_file", str(temp), f"{temp} is left over from an interrupted write"))
        for stray in self.artifacts.iter_strays():
            problems.append(Problem("stray_file", str(stray), f"{stray} does not belong in the blob store"))
        return problems

    def gc(self, *, min_age_s: float = 3600.0) -> list[Path]:
        removed: list[Path] = []
        cutoff = time.time() - min_age_s
        # Holding the write lock keeps registrations from committing a reference mid-sweep; the age
        # limit protects blobs that a registration copied in but has not committed yet.
        with self._write() as conn:
            dbfile.quick_check(conn, self.db_path)  # a damaged database would make live blobs look orphaned
            referenced = {row[0] for row in conn.execute("SELECT DISTINCT artifact_sha256 FROM adapters")}
            candidates = [
                b for b in self.artifacts.iter_blobs() if self.artifacts.digest_of(b) not in referenced
            ]
            candidates += self.artifacts.iter_temp_files()
            for path in candidates:
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime <= cutoff:
                        self.artifacts.remove(path)
                        removed.append(path)
            if removed:
                self._audit(conn, default_actor(), "gc", None, removed=[p.name for p in removed])
        return removed
