"""The embedded registry: SQLite (WAL) for records, a content-addressed blob store beside it.

Layout of a registry directory::

    registry.sqlite3                 records, status changes, evaluations, append-only audit log
    blobs/sha256/<hex>.safetensors   artifacts, read-only, named by their sha256

Crash safety: the artifact is copied in first (atomically, under a temporary name), and the
record is inserted afterwards in one ``BEGIN IMMEDIATE`` transaction that also takes the next
version number. A process killed in between leaves at most an unreferenced blob or a temporary
file, both of which ``verify`` reports and ``gc`` removes; never a record without its artifact.
Concurrent writers serialise on SQLite's write lock (``busy_timeout``), so two registrations of
the same name get distinct versions.

Trust: every row is hash-chained as it is written (``chain.py``: ``verify`` and loading catch
rows edited outside the registry); imports land as candidates with the exporter's word kept as
provenance (``provenance.py``); records pass one validation (``validation.py``) and evaluations
one schema (``evidence.py``); a damaged database file is refused, never recreated (``dbfile.py``).

The schema lives in ``sqlite_schema.py``; ``verify``/``gc`` in ``sqlite_maintenance.py`` and
export/import in ``sqlite_bundles.py`` (mixins of :class:`SqliteRegistry`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cosmos_ros.model.adapter_folder import METADATA_NAME, read_adapter_metadata, weights_path
from cosmos_ros.registry import bundle as bundle_io
from cosmos_ros.registry import chain, dbfile, evidence, policy_record, validation
from cosmos_ros.registry.artifacts import ArtifactStore, fault_point, inspect_safetensors, sha256_file
from cosmos_ros.registry.names import InvalidNameError, adapter_id, parse_ref, validate_name, validate_tag
from cosmos_ros.registry.records import (
    STATUSES,
    AdapterNotFoundError,
    AdapterRecord,
    AuditEntry,
    CatalogEntry,
    EvaluationEntry,
    RegistryError,
    StatusChange,
    StatusTransitionError,
    check_transition,
    utc_now,
)
from cosmos_ros.registry.sqlite_bundles import BundleMixin
from cosmos_ros.registry.sqlite_bundles import checked_actor as _actor
from cosmos_ros.registry.sqlite_maintenance import MaintenanceMixin
from cosmos_ros.registry.sqlite_schema import (
    BUSY_TIMEOUT_MS,
    DB_NAME,
    METADATA_FIELDS,
    SCHEMA_VERSION,
    create_schema,
    create_tables,
)
from cosmos_ros.registry.store import Registry, warn_no_base_fingerprint

LOG = logging.getLogger(__name__)


class SqliteRegistry(BundleMixin, MaintenanceMixin, Registry):
    """The default, embedded backend (one directory; safe for several processes on one host)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self.location = str(self.root)
        if self.root.exists() and not self.root.is_dir():
            raise RegistryError(f"registry location {self.root} exists and is not a directory")
        self.root.mkdir(parents=True, exist_ok=True)
        self.artifacts = ArtifactStore(self.root)
        bundle_io.remove_stale_scratch(self.root)  # what killed imports left (gc also removes them)
        self.db_path = self.root / DB_NAME
        self._lock = threading.RLock()
        has_artifacts = next(iter(self.artifacts.iter_blobs()), None) is not None
        if not dbfile.check_database_file(self.db_path, has_artifacts):
            dbfile.create_database(self.db_path, create_schema)
            dbfile.check_database_file(self.db_path, has_artifacts)
        self._conn = sqlite3.connect(
            self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            self._open_schema()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise dbfile.describe(exc, self.db_path) from exc

    def _open_schema(self) -> None:
        self._conn.row_factory = sqlite3.Row
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._require_wal()
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        with self._write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                raise RegistryError(f"{self.db_path}: no schema version recorded; not a registry database")
            if row["value"] != SCHEMA_VERSION:
                raise RegistryError(
                    f"{self.db_path}: registry schema {row['value']} is not {SCHEMA_VERSION}, "
                    "which this version reads"
                )
            create_tables(conn)  # tables added since (provenance, chain) appear in older registries
            if conn.execute("SELECT 1 FROM meta WHERE key = 'chain'").fetchone() is None:
                # A registry from before tamper-evidence: its rows are chained once, as they are now.
                adopted = chain.adopt_unchained(conn)
                conn.execute("INSERT INTO meta (key, value) VALUES ('chain', ?)", (utc_now(),))
                if adopted:
                    LOG.info("%s: chained %d rows written before tamper-evidence", self.db_path, adopted)

    def _require_wal(self) -> None:
        """Switch to WAL or refuse: concurrency relies on it; SQLite reports a refusal only in the result."""
        row = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()
        mode = str(row[0]).lower() if row is not None else "unknown"
        if mode != "wal":
            self._conn.close()
            raise RegistryError(
                f"registry {self.db_path}: SQLite refused write-ahead logging (journal_mode is {mode!r}, "
                "not 'wal'); put the registry on a local filesystem that supports it (not NFS/SMB)"
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ---- transactions ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from the start (no upgrade deadlocks)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot across several queries."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    @staticmethod
    def _audit(conn: sqlite3.Connection, actor: str, action: str, target: str | None, **details: Any) -> None:
        conn.execute(
            "INSERT INTO audit_log (at, actor, action, adapter_id, details) VALUES (?, ?, ?, ?, ?)",
            (utc_now(), actor, action, target, json.dumps(details, sort_keys=True, default=str)),
        )

    # ---- site policy ----------------------------------------------------------------------------
    def policy_problem(self) -> str | None:
        """Why ``policy.yaml`` is not the file ``adapters policy`` last recorded; ``None`` if it is."""
        with self._read() as conn:
            return policy_record.problem(conn, self.root)

    def record_policy(self, details: dict[str, Any], *, by: str | None = None) -> None:
        """Audit a policy change (or the acceptance of a hand edit) with the file's sha256 as it is now."""
        actor = _actor(by)
        with self._write() as conn:
            sha = policy_record.file_sha256(self.root)
            self._audit(conn, actor, policy_record.POLICY_ACTION, None, policy_sha256=sha, **details)

    # ---- register -------------------------------------------------------------------------------
    def register(
        self,
        folder: str | os.PathLike[str],
        name: str,
        *,
        created_by: str | None = None,
        parent: str | None = None,
        tags: Iterable[str] = (),
        status: str = "draft",
        note: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> AdapterRecord:
        validate_name(name)
        tag_list = sorted({validate_tag(tag) for tag in tags})
        validation.check_text(note, f"registering {name}", "note")
        actor = _actor(created_by)
        if status not in ("draft", "candidate"):
            raise StatusTransitionError(
                f"a new version starts as draft or candidate, not {status!r}; approve it afterwards"
            )
        source = weights_path(folder)
        fields = self._registration_fields(Path(folder), source, overrides or {})
        info = inspect_safetensors(source)
        for key, inferred in (
            ("adapter_type", info.inferred_type),
            ("rank", info.inferred_rank),
            ("target_modules", info.inferred_targets),
        ):
            if fields.get(key) in (None, []) and inferred:
                fields[key] = inferred
        digest, size = sha256_file(source)
        parent_id = self._canonical_parent(parent, fields.pop("metadata_parent", None), Path(folder))

        for _attempt in range(3):
            with open(source, "rb") as fh:
                blob = self.artifacts.put(fh, digest, str(source))
            fault_point("after_blob")
            with self._write() as conn:
                if not blob.is_file():  # a concurrent gc removed it between copy and commit: copy again
                    continue
                version = conn.execute(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM adapters WHERE name = ?", (name,)
                ).fetchone()[0]
                duplicates = [
                    adapter_id(row["name"], row["version"])
                    for row in conn.execute(
                        "SELECT name, version FROM adapters WHERE artifact_sha256 = ? ORDER BY name, version"
                        " LIMIT 4",
                        (digest,),
                    )
                ]
                now = utc_now()
                record = AdapterRecord(
                    name=name,
                    version=version,
                    artifact_sha256=digest,
                    artifact_size=size,
                    status=status,
                    adapter_type=fields.get("adapter_type"),
                    rank=fields.get("rank"),
                    alpha=fields.get("alpha"),
                    target_modules=list(fields.get("target_modules") or []),
                    base_fingerprint=fields.get("base_fingerprint"),
                    dataset_manifest_sha256=fields.get("dataset_manifest_sha256"),
                    dataset_path=fields.get("dataset_path"),
                    training_config=dict(fields.get("training_config") or {}),
                    code_version=fields.get("code_version"),
                    metrics=dict(fields.get("metrics") or {}),
                    parent=parent_id,
                    tags=tag_list,
                    created_by=actor,
                    created_at=now,
                    note=note,
                    tensor_count=info.tensor_count,
                    history=[StatusChange(None, status, actor, now, note)],
                )
                self._insert_record(conn, record)
                self._audit(
                    conn,
                    actor,
                    "register",
                    adapter_id(name, version),
                    artifact_sha256=digest,
                    source=str(source),
                    status=status,
                    parent=parent_id,
                )
                fault_point("in_transaction")
            if duplicates:
                shown = ", ".join(duplicates[:3]) + (" and more" if len(duplicates) > 3 else "")
                LOG.warning("%s has the same weights as %s", adapter_id(name, version), shown)
            if record.base_fingerprint is None:
                warn_no_base_fingerprint(record, folder)
            return self.get(adapter_id(name, version))
        raise RegistryError(f"could not register {source}: its artifact kept disappearing (concurrent gc?)")

    def _registration_fields(self, folder: Path, source: Path, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(overrides) - set(METADATA_FIELDS))
        if unknown:
            raise RegistryError(
                f"unknown registration field(s) {unknown}; known: {', '.join(METADATA_FIELDS)}"
            )
        fields: dict[str, Any] = {}
        validation.check_metadata_file(folder)
        meta_folder = folder if folder.is_dir() else None
        meta = read_adapter_metadata(meta_folder) if meta_folder is not None else None
        if meta is not None:
            data = meta.to_dict()
            fields = {key: data.get(key) for key in METADATA_FIELDS}
            fields["metadata_parent"] = data.get("parent")
        fields.update({key: value for key, value in overrides.items() if value is not None})
        return validation.check_registration_fields(fields, f"registering {source}")

    def _canonical_parent(self, explicit: str | None, from_metadata: Any, folder: Path) -> str | None:
        """The parent's id; one that is not registered here is refused, never dropped with a warning."""
        if explicit:
            return self.get(explicit).adapter_id
        if from_metadata:
            try:
                return self.get(from_metadata).adapter_id
            except (RegistryError, InvalidNameError) as exc:
                raise validation.InvalidRecordError(
                    f"{folder / METADATA_NAME}: parent {from_metadata!a} is not accepted ({exc}); "
                    "register the parent first, give --parent REF, or remove the field"
                ) from exc
        return None

    # ---- reads ----------------------------------------------------------------------------------
    def get(self, ref: str) -> AdapterRecord:
        parsed = parse_ref(ref)
        with self._read() as conn:
            row = self._select_ref(conn, parsed.name, parsed.version, parsed.selector)
            if row is None:
                raise AdapterNotFoundError(self._not_found_message(conn, ref, parsed.name))
            chain.check_record(conn, row, str(self.db_path))
            return self._load_records(conn, [row])[0]

    @staticmethod
    def _select_ref(conn: sqlite3.Connection, name: str, version: int | None, selector: str | None) -> Any:
        base = "SELECT * FROM adapters WHERE name = ?"
        if version is not None:
            return conn.execute(base + " AND version = ?", (name, version)).fetchone()
        if selector == "latest":
            return conn.execute(base + " ORDER BY version DESC LIMIT 1", (name,)).fetchone()
        if selector is not None:
            return conn.execute(
                base + " AND status = ? ORDER BY version DESC LIMIT 1", (name, selector)
            ).fetchone()
        row = conn.execute(
            base + " AND status = 'approved' ORDER BY version DESC LIMIT 1", (name,)
        ).fetchone()
        if row is None:
            row = conn.execute(
                base + " AND status != 'revoked' ORDER BY version DESC LIMIT 1", (name,)
            ).fetchone()
        return row

    @staticmethod
    def _not_found_message(conn: sqlite3.Connection, ref: str, name: str) -> str:
        rows = conn.execute(
            "SELECT version, status FROM adapters WHERE name = ? ORDER BY version", (name,)
        ).fetchall()
        if rows:
            known = ", ".join(f"{name}@{row['version']} ({row['status']})" for row in rows)
            return f"no adapter matches {ref!r}; registered versions: {known}"
        names = [row[0] for row in conn.execute("SELECT DISTINCT name FROM adapters ORDER BY name LIMIT 20")]
        return f"no adapter named {name!r}; registered names: {', '.join(names) or '(none)'}"

    def list(
        self, name: str | None = None, status: str | None = None, base: str | None = None
    ) -> list[AdapterRecord]:
        query, params = "SELECT * FROM adapters WHERE 1 = 1", []
        if name is not None:
            query += " AND name = ?"
            params.append(validate_name(name))
        if status is not None:
            if status not in STATUSES:
                raise RegistryError(f"unknown status {status!r}; statuses: {', '.join(STATUSES)}")
            query += " AND status = ?"
            params.append(status)
        if base is not None:
            query += " AND base_fingerprint = ?"
            params.append(base)
        with self._read() as conn:
            rows = conn.execute(query + " ORDER BY name, version", params).fetchall()
            return self._load_records(conn, rows)

    def catalog(self, name: str | None = None) -> list[CatalogEntry]:
        query = "SELECT name, version, status, base_fingerprint, artifact_sha256, created_at FROM adapters"
        params: tuple[str, ...] = ()
        if name is not None:
            query += " WHERE name = ?"
            params = (validate_name(name),)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY name, version", params).fetchall()
        return [CatalogEntry(**dict(row)) for row in rows]

    def _load_records(self, conn: sqlite3.Connection, rows: list[Any]) -> list[AdapterRecord]:
        try:
            return self._build_records(conn, rows)
        except (ValueError, TypeError) as exc:  # JSON in a row damaged outside the registry
            raise chain.ChainError(
                f"{self.db_path}: a stored record cannot be read ({exc}); run 'cosmos-ros adapters verify'"
            ) from exc

    @staticmethod
    def _build_records(conn: sqlite3.Connection, rows: list[Any]) -> list[AdapterRecord]:
        if not rows:
            return []
        keys = {(row["name"], row["version"]) for row in rows}
        history: dict[tuple[str, int], list[StatusChange]] = {key: [] for key in keys}
        evaluations: dict[tuple[str, int], list[EvaluationEntry]] = {key: [] for key in keys}
        names = sorted({name for name, _ in keys})
        marks = ", ".join("?" for _ in names)
        for row in conn.execute(f"SELECT * FROM status_changes WHERE name IN ({marks}) ORDER BY seq", names):
            key = (row["name"], row["version"])
            if key in history:
                history[key].append(
                    StatusChange(
                        row["from_status"],
                        row["to_status"],
                        row["by"],
                        row["at"],
                        row["note"],
                        row["force_reason"],
                    )
                )
        for row in conn.execute(f"SELECT * FROM evaluations WHERE name IN ({marks}) ORDER BY seq", names):
            key = (row["name"], row["version"])
            if key in evaluations:
                evaluations[key].append(EvaluationEntry(json.loads(row["results"]), row["by"], row["at"]))
        origins: dict[tuple[str, int], dict[str, Any]] = {}
        for row in conn.execute(f"SELECT * FROM provenance WHERE name IN ({marks})", names):
            origins[(row["name"], row["version"])] = json.loads(row["data"])
        return [
            AdapterRecord(
                name=row["name"],
                version=row["version"],
                artifact_sha256=row["artifact_sha256"],
                artifact_size=row["artifact_size"],
                status=row["status"],
                adapter_type=row["adapter_type"],
                rank=row["rank"],
                alpha=row["alpha"],
                target_modules=json.loads(row["target_modules"]),
                base_fingerprint=row["base_fingerprint"],
                dataset_manifest_sha256=row["dataset_manifest_sha256"],
                dataset_path=row["dataset_path"],
                training_config=json.loads(row["training_config"]),
                code_version=row["code_version"],
                metrics=json.loads(row["metrics"]),
                parent=row["parent"],
                tags=json.loads(row["tags"]),
                created_by=row["created_by"],
                created_at=row["created_at"],
                note=row["note"],
                tensor_count=row["tensor_count"],
                history=history[(row["name"], row["version"])],
                evaluations=evaluations[(row["name"], row["version"])],
                provenance=origins.get((row["name"], row["version"])),
            )
            for row in rows
        ]

    def artifact_path(self, record: AdapterRecord) -> Path:
        return self.artifacts.path_for(record.artifact_sha256)

    # ---- governance -----------------------------------------------------------------------------
    def set_status(
        self, ref: str, status: str, *, by: str | None = None, note: str, force_reason: str | None = None
    ) -> AdapterRecord:
        if not note or not note.strip():
            raise StatusTransitionError(f"{ref}: a note is required for every status change (say why)")
        if force_reason is not None and not force_reason.strip():
            raise StatusTransitionError(f"{ref}: an empty force reason is not a reason")
        actor = _actor(by)
        parsed = parse_ref(ref)
        with self._write() as conn:
            row = self._select_ref(conn, parsed.name, parsed.version, parsed.selector)
            if row is None:
                raise AdapterNotFoundError(self._not_found_message(conn, ref, parsed.name))
            target = adapter_id(row["name"], row["version"])
            chain.check_record(conn, row, str(self.db_path))
            check_transition(row["status"], status, target)
            forced = False
            if status == "approved":
                if row["base_fingerprint"] is None:
                    raise StatusTransitionError(
                        f"{target} records no base-model fingerprint, so nodes could not check it; "
                        "register it again with --base-fingerprint"
                    )
                forced = self._check_evaluation_gate(conn, row, target, force_reason)
            now = utc_now()
            conn.execute(
                "UPDATE adapters SET status = ? WHERE name = ? AND version = ?",
                (status, row["name"], row["version"]),
            )
            cursor = conn.execute(
                "INSERT INTO status_changes (name, version, from_status, to_status, by, at, note,"
                " force_reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row["name"], row["version"], row["status"], status, actor, now, note, force_reason),
            )
            chain.append(conn, "status_changes", cursor.lastrowid)
            self._audit(
                conn,
                actor,
                f"status:{status}",
                target,
                from_status=row["status"],
                to_status=status,
                note=note,
                force_reason=force_reason,
                forced=forced,
            )
        return self.get(target)

    @staticmethod
    def _check_evaluation_gate(
        conn: sqlite3.Connection, row: Any, target: str, force_reason: str | None
    ) -> bool:
        """Approval needs a latest evaluation that passed a gate; returns True where forced past the gate.

        Only evaluations attached here count: an imported version's are provenance, not evidence.
        """
        latest = conn.execute(
            "SELECT results FROM evaluations WHERE name = ? AND version = ? ORDER BY seq DESC LIMIT 1",
            (row["name"], row["version"]),
        ).fetchone()
        verdict = None if latest is None else evidence.gate_verdict(json.loads(latest["results"]))
        if latest is None:
            problem = f"{target} has no evaluation results"
        elif verdict is False:
            problem = f"{target}'s latest evaluation did not pass"
        elif verdict is None:
            problem = f"{target}'s latest evaluation has no gate verdict (run 'cosmos-ros eval' with --gate)"
        else:
            return False
        if force_reason is None:
            raise StatusTransitionError(
                f"{problem}; attach them first ('cosmos-ros adapters attach-eval') or force with a reason"
            )
        LOG.warning("%s; approved anyway: %s", problem, force_reason)
        return True

    def attach_evaluation(self, ref: str, results: dict[str, Any], *, by: str | None = None) -> AdapterRecord:
        evidence.check_evaluation(results, f"{ref}")
        encoded = json.dumps(results, sort_keys=True, allow_nan=False)
        actor = _actor(by)
        parsed = parse_ref(ref)
        with self._write() as conn:
            row = self._select_ref(conn, parsed.name, parsed.version, parsed.selector)
            if row is None:
                raise AdapterNotFoundError(self._not_found_message(conn, ref, parsed.name))
            target = adapter_id(row["name"], row["version"])
            chain.check_record(conn, row, str(self.db_path))
            if row["status"] == "revoked":
                raise StatusTransitionError(f"{target} is revoked; evaluations are no longer attached")
            if row["base_fingerprint"] is not None and results["base_fingerprint"] != row["base_fingerprint"]:
                raise evidence.EvidenceError(
                    f"{target}: evaluation field 'base_fingerprint' = {results['base_fingerprint']} is not "
                    f"the base model {target} was trained on ({row['base_fingerprint']})"
                )
            cursor = conn.execute(
                "INSERT INTO evaluations (name, version, results, by, at) VALUES (?, ?, ?, ?, ?)",
                (row["name"], row["version"], encoded, actor, utc_now()),
            )
            chain.append(conn, "evaluations", cursor.lastrowid)
            self._audit(conn, actor, "evaluation", target, keys=sorted(results), passed=results.get("passed"))
        return self.get(target)

    def audit_log(self, adapter: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        query, params = "SELECT * FROM audit_log", []
        if adapter is not None:
            parsed = parse_ref(adapter)
            if parsed.version is not None:
                query += " WHERE adapter_id = ?"
                params.append(str(parsed))
            else:
                query += " WHERE adapter_id LIKE ? ESCAPE '\\'"
                params.append(parsed.name.replace("_", "\\_") + "@%")
        query += " ORDER BY seq"
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        entries = [
            AuditEntry(
                row["seq"],
                row["at"],
                row["actor"],
                row["action"],
                row["adapter_id"],
                json.loads(row["details"]),
            )
            for row in rows
        ]
        return entries[-limit:] if limit else entries
