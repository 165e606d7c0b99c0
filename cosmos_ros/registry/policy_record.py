"""Tamper-evidence for ``policy.yaml``: every change through ``adapters policy`` is audited with its sha256.

Why: the site policy decides which imports are trusted, yet it is a plain file beside the
database; a hand edit (``require_signatures: false``, an extra trusted key) would change what this
registry accepts without a trace. Each ``adapters policy`` change writes an audit-log entry
(``action: policy``: who, what changed, the file's new sha256); ``verify`` reports a file that no
longer matches the last entry, and imports (and loading imported versions) are refused until
``adapters policy`` is run to accept it, which is itself audited.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from cosmos_ros.registry.site_policy import SitePolicy, policy_path

POLICY_ACTION = "policy"


def file_sha256(root: str | os.PathLike[str]) -> str | None:
    """The sha256 of ``<root>/policy.yaml``; ``None`` where there is none (the defaults)."""
    path = policy_path(root)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def recorded_sha256(conn: sqlite3.Connection) -> tuple[bool, str | None]:
    """(whether ``adapters policy`` ever recorded the file, the sha256 it recorded last)."""
    row = conn.execute(
        "SELECT details FROM audit_log WHERE action = ? ORDER BY seq DESC LIMIT 1", (POLICY_ACTION,)
    ).fetchone()
    if row is None:
        return False, None
    try:
        details = json.loads(row[0])
    except (TypeError, json.JSONDecodeError):
        details = {}
    sha = details.get("policy_sha256") if isinstance(details, dict) else None
    return True, sha if isinstance(sha, str) else None


def problem(conn: sqlite3.Connection, root: str | os.PathLike[str]) -> str | None:
    """A one-line description of a policy file that is not the one last recorded; ``None`` if it is."""
    path = policy_path(root)
    current = file_sha256(root)
    recorded, sha = recorded_sha256(conn)
    if current == sha:
        return None
    accept = f"run 'cosmos-ros adapters policy --registry {Path(root)}' to review and accept it"
    if current is None:
        return f"{path} was removed since 'adapters policy' recorded it (sha256 {sha}); {accept}"
    if not recorded:
        return f"{path} was written by hand and never recorded by 'adapters policy'; {accept}"
    return (
        f"{path} was changed by hand since 'adapters policy' recorded it (sha256 {current}, "
        f"recorded {sha}); {accept}"
    )


def changes(before: SitePolicy, after: SitePolicy) -> dict[str, Any]:
    """What an ``adapters policy`` run changed, for the audit log (``field: [old, new]``, keys)."""
    out: dict[str, Any] = {}
    for flag in ("require_signatures", "keep_signed_approval"):
        if getattr(before, flag) != getattr(after, flag):
            out[flag] = [getattr(before, flag), getattr(after, flag)]
    added = [key for key in after.trusted_keys if key not in before.trusted_keys]
    removed = [key for key in before.trusted_keys if key not in after.trusted_keys]
    if added:
        out["trusted_keys_added"] = added
    if removed:
        out["trusted_keys_removed"] = removed
    return out
