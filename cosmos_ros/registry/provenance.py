"""The registry's trust boundary: an imported version never arrives approved.

Why: ``adapters import`` used to keep the bundle's status, history and evaluations as they were,
so a hand-made bundle whose record said ``approved`` was loaded by ``predict --adapter
name@approved``. Now what the exporter said (its status, status history and evaluations) is kept
as *provenance*, shown as such, and never as this registry's status: the version lands as a
candidate (a draft stays a draft; a version the exporter revoked lands revoked, so a recall
travels) and becomes approved here only through this site's gate or a recorded ``--force-reason``.
The one exception is the site's own choice: with ``keep_signed_approval: true`` in its
``policy.yaml`` (``site_policy.py``), a bundle its exporter approved and signed with a key this
site trusts, whose signature verifies, keeps its approval; the history says so.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, replace
from typing import Any

from cosmos_ros.registry.names import adapter_id, parse_ref
from cosmos_ros.registry.records import AdapterRecord, BundleError, StatusChange


def landing_status(exporter_status: str) -> str:
    """The status an imported version gets here, whatever the exporter said."""
    if exporter_status in ("draft", "revoked"):
        return exporter_status
    return "candidate"


def imported_record(
    record: AdapterRecord,
    bundle: str,
    actor: str,
    now: str,
    signature: dict[str, Any] | None = None,
    *,
    keep_approval: bool = False,
) -> AdapterRecord:
    """``record`` as this registry stores it: its own status and history, the exporter's as provenance.

    ``signature`` is what the signature check found (``None``: unsigned); ``keep_approval`` is
    true only where it verified against a trusted key and the site policy keeps signed approvals.
    """
    provenance: dict[str, Any] = {
        "imported_from": bundle,
        "imported_by": actor,
        "imported_at": now,
        "exporter_status": record.status,
        "exporter_history": [asdict(change) for change in record.history],
        "exporter_evaluations": [asdict(entry) for entry in record.evaluations],
    }
    if signature is not None:
        provenance["signature"] = signature
    if record.provenance:
        provenance["earlier"] = record.provenance
    status = landing_status(record.status)
    note = f"imported from {bundle}; exporter said: {exporter_summary(provenance)}"
    if keep_approval and record.status == "approved" and signature and signature.get("verified"):
        status = "approved"
        note += (
            f"; approval kept: signed by trusted key {signature.get('signer')} and this site's "
            "policy has keep_signed_approval: true"
        )
    return replace(
        record,
        status=status,
        history=[StatusChange(None, status, actor, now, note)],
        evaluations=[],
        provenance=provenance,
    )


def exporter_summary(provenance: dict[str, Any]) -> str:
    """``approved by X at T`` (plus evaluations and forcing), from what the exporter recorded."""
    status = provenance.get("exporter_status", "?")
    history = provenance.get("exporter_history") or []
    last = next((change for change in reversed(history) if change.get("to_status") == status), None)
    text = str(status)
    if last is not None:
        text += f" by {last.get('by')} at {last.get('at')}"
        if last.get("force_reason"):
            text += f" (forced: {last['force_reason']})"
    evaluations = provenance.get("exporter_evaluations") or []
    if evaluations:
        latest = evaluations[-1] if isinstance(evaluations[-1], dict) else {}
        verdict = (latest.get("results") or {}).get("passed")
        shown = {True: "passed", False: "failed"}.get(verdict, "no gate verdict")
        text += f"; {len(evaluations)} evaluation(s), latest {shown}"
    else:
        text += "; no evaluations"
    return text


def describe(provenance: dict[str, Any] | None) -> str | None:
    """One line for ``adapters show``: where the version came from and what its exporter said."""
    if not provenance:
        return None
    return (
        f"imported from {provenance.get('imported_from')} by {provenance.get('imported_by')} at "
        f"{provenance.get('imported_at')}; {signature_summary(provenance.get('signature'))}; "
        f"exporter said (not trusted here): {exporter_summary(provenance)}"
    )


def signature_summary(signature: Any) -> str:
    """``signed by sha256:... (verified ...)``, or ``unsigned``, for ``adapters show``."""
    if not isinstance(signature, dict):
        return "unsigned"
    if signature.get("verified"):
        return f"signed by {signature.get('signer')} (verified against a trusted key)"
    return f"signed by {signature.get('signer')} (not verified: {signature.get('why', 'unknown reason')})"


def check_import(conn: sqlite3.Connection, record: AdapterRecord, path: object) -> bool:
    """True where the version is already here with the same artifact; raises where it may not land.

    Refused: another artifact under the same id, weights of a version revoked here (a recall is
    not undone by re-importing the weights under a new number), and a parent not registered here.
    """
    same_id = conn.execute(
        "SELECT artifact_sha256 FROM adapters WHERE name = ? AND version = ?",
        (record.name, record.version),
    ).fetchone()
    revoked = [
        adapter_id(row["name"], row["version"])
        for row in conn.execute(
            "SELECT name, version FROM adapters WHERE artifact_sha256 = ? AND status = 'revoked'"
            " ORDER BY name, version LIMIT 3",
            (record.artifact_sha256,),
        )
    ]
    parent = None
    if record.parent is not None:
        ref = parse_ref(record.parent)
        parent = conn.execute(
            "SELECT 1 FROM adapters WHERE name = ? AND version = ?", (ref.name, ref.version)
        ).fetchone()
    if same_id is not None and same_id["artifact_sha256"] != record.artifact_sha256:
        raise BundleError(
            f"{path}: {record.adapter_id} already exists here with artifact "
            f"{same_id['artifact_sha256']}, the bundle holds {record.artifact_sha256}"
        )
    if revoked and record.adapter_id not in revoked:
        raise BundleError(
            f"{path}: its weights (sha256 {record.artifact_sha256}) are those of {', '.join(revoked)}, "
            "revoked here; refused (a recall is not undone by importing the same weights again)"
        )
    if same_id is not None:
        return True
    if record.parent is not None and parent is None:
        raise BundleError(
            f"{path}: record field parent {record.parent!r} is not registered here; import "
            f"{record.parent} first (lineage must point at a version this registry holds)"
        )
    return False
