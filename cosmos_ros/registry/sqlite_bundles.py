"""The store's bundle path: ``export_bundle`` and ``import_bundle``, and inserting a whole record.

A mixin of :class:`~cosmos_ros.registry.sqlite_store.SqliteRegistry`, split from it so the store's
module stays readable; it uses the store's connection, lock and transactions.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from cosmos_ros.registry import bundle as bundle_io
from cosmos_ros.registry import chain, dbfile, provenance, signing
from cosmos_ros.registry.artifacts import ArtifactStore, sha256_file
from cosmos_ros.registry.records import AdapterRecord, ArtifactError, RegistryError, utc_now
from cosmos_ros.registry.site_policy import SignatureGate
from cosmos_ros.registry.store import default_actor


class BundleMixin:
    """Export and import of bundles over the store's connection (see ``SqliteRegistry``)."""

    root: Path
    db_path: Path
    artifacts: ArtifactStore
    _conn: sqlite3.Connection
    _lock: threading.RLock

    # provided by SqliteRegistry (annotations only, for type checkers)
    _write: Any
    _audit: Any
    policy_problem: Any
    get: Any
    artifact_path: Any

    # ---- bundles --------------------------------------------------------------------------------
    def export_bundle(
        self, ref: str, path: str | os.PathLike[str], *, sign_key: str | os.PathLike[str] | None = None
    ) -> Path:
        """Write the bundle, then audit it; a registry that cannot record the export writes nothing."""
        signer = signing.check_private_key(sign_key) if sign_key is not None else None
        record = self.get(ref)
        target = Path(path)
        if target.is_dir():
            raise RegistryError(
                f"export output {target} is a folder; give a file name, e.g. {target}/bundle.tar"
            )
        blob = self.artifact_path(record)
        if not blob.is_file() or sha256_file(blob)[0] != record.artifact_sha256:
            raise ArtifactError(
                f"{record.adapter_id}: artifact {blob} is missing or damaged; nothing exported"
            )
        try:
            with self._write():  # probe: a read-only registry fails here, before the bundle exists
                pass
        except sqlite3.OperationalError as exc:
            raise dbfile.describe(exc, self.db_path) from exc
        sign = functools.partial(signing.sign_manifest, private_key=sign_key) if sign_key else None
        out = bundle_io.write_bundle(target, record, blob, sign)
        try:
            with self._write() as conn:
                signed = {"signed_by": signer} if signer else {}
                self._audit(conn, default_actor(), "export", record.adapter_id, bundle=target.name, **signed)
        except BaseException:
            out.unlink(missing_ok=True)  # an export the audit log does not show must not exist
            raise
        return out

    def import_bundle(self, path: str | os.PathLike[str], *, by: str | None = None) -> AdapterRecord:
        """Add a bundle's version as this registry's own: candidate, the exporter's word as provenance."""
        actor = checked_actor(by)
        label = Path(path).name
        gate = SignatureGate.for_registry(self.root, str(path))  # this site's policy.yaml
        hand_edit = self.policy_problem()
        if hand_edit is not None:  # the policy that would judge this import is not the recorded one
            raise RegistryError(f"{path}: import refused: {hand_edit}")
        with bundle_io.open_bundle(path, gate) as (exported, artifact_stream):
            record = provenance.imported_record(
                exported, label, actor, utc_now(), gate.provenance, keep_approval=gate.keeps_approval
            )
            # Checked before copying, so a refusal leaves no blob; and again under the write lock.
            self._check_import(self._conn, record, path)
            self.artifacts.put(artifact_stream, record.artifact_sha256, f"{path}:artifact")
            with self._write() as conn:
                if self._check_import(conn, record, path):
                    self._audit(conn, actor, "import:already_present", record.adapter_id, bundle=label)
                else:
                    self._insert_record(conn, record)
                    self._audit(
                        conn,
                        actor,
                        "import",
                        record.adapter_id,
                        bundle=label,
                        artifact_sha256=record.artifact_sha256,
                        status=record.status,
                        exporter_status=exported.status,
                        **({"signature": gate.provenance} if gate.provenance else {}),
                    )
        return self.get(record.adapter_id)

    def _check_import(self, conn: sqlite3.Connection, record: AdapterRecord, path: object) -> bool:
        with self._lock:
            return provenance.check_import(conn, record, path)

    @staticmethod
    def _insert_record(conn: sqlite3.Connection, record: AdapterRecord) -> None:
        cursor = conn.execute(
            "INSERT INTO adapters (name, version, artifact_sha256, artifact_size, status, adapter_type, rank,"
            " alpha, target_modules, base_fingerprint, dataset_manifest_sha256, dataset_path,"
            " training_config, code_version, metrics, parent, tags, created_by, created_at,"
            " note, tensor_count)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.name,
                record.version,
                record.artifact_sha256,
                record.artifact_size,
                record.status,
                record.adapter_type,
                record.rank,
                record.alpha,
                json.dumps(list(record.target_modules)),
                record.base_fingerprint,
                record.dataset_manifest_sha256,
                record.dataset_path,
                json.dumps(record.training_config, sort_keys=True),
                record.code_version,
                json.dumps(record.metrics, sort_keys=True),
                record.parent,
                json.dumps(list(record.tags)),
                record.created_by,
                record.created_at,
                record.note,
                record.tensor_count,
            ),
        )
        chain.append(conn, "adapters", cursor.lastrowid)
        for change in record.history:
            cursor = conn.execute(
                "INSERT INTO status_changes (name, version, from_status, to_status, by, at, note,"
                " force_reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.version,
                    change.from_status,
                    change.to_status,
                    change.by,
                    change.at,
                    change.note,
                    change.force_reason,
                ),
            )
            chain.append(conn, "status_changes", cursor.lastrowid)
        for entry in record.evaluations:
            cursor = conn.execute(
                "INSERT INTO evaluations (name, version, results, by, at) VALUES (?, ?, ?, ?, ?)",
                (record.name, record.version, json.dumps(entry.results, sort_keys=True), entry.by, entry.at),
            )
            chain.append(conn, "evaluations", cursor.lastrowid)
        if record.provenance is not None:
            cursor = conn.execute(
                "INSERT INTO provenance (name, version, data) VALUES (?, ?, ?)",
                (record.name, record.version, json.dumps(record.provenance, sort_keys=True)),
            )
            chain.append(conn, "provenance", cursor.lastrowid)


def checked_actor(name: str | None) -> str:
    """The acting name, refused when it could forge audit-log lines (control characters, huge)."""
    actor = name if name else default_actor()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in actor) or len(actor) > 200:
        raise RegistryError(f"actor name {actor!r} is not accepted (printable, at most 200 characters)")
    return actor
