"""The registry interface: what every backend (the embedded SQLite one today, a server later) offers.

Backends implement the abstract storage operations; the governance conveniences (promote,
approve, ..., diff, the loading policy) are written once here on top of them.
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cosmos_ros.progress import ProgressCallback
from cosmos_ros.registry.policy import LoadableAdapter, resolve_for_loading
from cosmos_ros.registry.records import AdapterRecord, AuditEntry, CatalogEntry, Problem

REGISTRY_ENV = "COSMOS_ROS_REGISTRY"
LOG = logging.getLogger(__name__)
#: ``extra`` tag of the log record :func:`warn_no_base_fingerprint` writes: a caller that says the
#: same thing in its own words (the CLI, which also knows where the fingerprint can be found) drops it.
NO_BASE_NOTICE = "no_base_fingerprint"


def default_registry_path() -> Path:
    """``$COSMOS_ROS_REGISTRY`` if set, else ``~/.cache/cosmos_ros/registry``."""
    configured = os.environ.get(REGISTRY_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "cosmos_ros" / "registry"


def default_actor() -> str:
    """Who is acting when nobody says: ``$COSMOS_ROS_USER``, else the login name."""
    actor = os.environ.get("COSMOS_ROS_USER")
    if actor:
        return actor
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def warn_no_base_fingerprint(record: AdapterRecord, source: str | os.PathLike[str]) -> None:
    """Log a warning that ``record`` has no base-model fingerprint; backends call it from ``register``.

    Why: the fingerprint is what matches an adapter to the base model it was trained on; without it
    the record can never be approved and, where unapproved adapters are allowed, loads on any base
    unchecked. Only the CLI used to say so, and library callers (training, scripts) learnt it late.
    """
    LOG.warning(
        "%s records no base-model fingerprint (nothing in %s gives one, and no "
        "overrides={'base_fingerprint': ...} was passed), so it cannot be matched to the base model it "
        "was trained on: it cannot be approved, and loaders that allow unapproved adapters load it on "
        "any base unchecked",
        record.adapter_id,
        source,
        extra={"cosmos_ros_notice": NO_BASE_NOTICE},
    )


class Registry(abc.ABC):
    """Versions, lineage, status and evaluations of adapters, plus their immutable artifacts."""

    location: str

    # ---- storage operations every backend implements -------------------------------------------
    @abc.abstractmethod
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
        """Copy an adapter folder's (or .safetensors file's) weights in and record the next version.

        A record without a base-model fingerprint registers, with :func:`warn_no_base_fingerprint`.
        """

    @abc.abstractmethod
    def get(self, ref: str) -> AdapterRecord:
        """One record by ``name``, ``name@3``, ``name@latest`` or ``name@<status>``."""

    @abc.abstractmethod
    def list(
        self, name: str | None = None, status: str | None = None, base: str | None = None
    ) -> list[AdapterRecord]:
        """Records ordered by name and version, optionally filtered."""

    @abc.abstractmethod
    def catalog(self, name: str | None = None) -> list[CatalogEntry]:
        """A cheap listing (one query): names, versions, statuses; what a node shows."""

    @abc.abstractmethod
    def set_status(
        self, ref: str, status: str, *, by: str | None = None, note: str, force_reason: str | None = None
    ) -> AdapterRecord:
        """Move a version through the status machine; approving needs evaluation results or a reason."""

    @abc.abstractmethod
    def attach_evaluation(self, ref: str, results: dict[str, Any], *, by: str | None = None) -> AdapterRecord:
        """Append evaluation results in the ``eval`` command's schema (what the approval gate looks at)."""

    @abc.abstractmethod
    def artifact_path(self, record: AdapterRecord) -> Path:
        """Where the record's artifact lies (not checked)."""

    @abc.abstractmethod
    def verify(self, progress: ProgressCallback | None = None) -> list[Problem]:
        """Re-hash every artifact; report damage, missing files, orphans and leftovers."""

    @abc.abstractmethod
    def gc(self, *, min_age_s: float = 3600.0) -> list[Path]:
        """Remove orphan blobs and temporaries older than ``min_age_s``; returns what was removed."""

    @abc.abstractmethod
    def export_bundle(
        self, ref: str, path: str | os.PathLike[str], *, sign_key: str | os.PathLike[str] | None = None
    ) -> Path:
        """Write one version (record + artifact) into a bundle archive, signed with ``sign_key`` if given."""

    @abc.abstractmethod
    def import_bundle(self, path: str | os.PathLike[str], *, by: str | None = None) -> AdapterRecord:
        """Add a bundle's version as a candidate; what its exporter said is kept as provenance."""

    @abc.abstractmethod
    def audit_log(self, adapter: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """The append-only log of every change, oldest first (filtered by name or id)."""

    def close(self) -> None:  # noqa: B027 - backends without resources need nothing
        """Release resources (connections)."""

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- governance conveniences ----------------------------------------------------------------
    def promote(self, ref: str, *, by: str | None = None, note: str) -> AdapterRecord:
        """draft -> candidate."""
        return self.set_status(ref, "candidate", by=by, note=note)

    def approve(
        self, ref: str, *, by: str | None = None, note: str, force_reason: str | None = None
    ) -> AdapterRecord:
        return self.set_status(ref, "approved", by=by, note=note, force_reason=force_reason)

    def deprecate(self, ref: str, *, by: str | None = None, note: str) -> AdapterRecord:
        return self.set_status(ref, "deprecated", by=by, note=note)

    def revoke(self, ref: str, *, by: str | None = None, note: str) -> AdapterRecord:
        return self.set_status(ref, "revoked", by=by, note=note)

    def resolve_for_loading(
        self, ref: str, *, base_fingerprint: str | None, allow_unapproved: bool = False
    ) -> LoadableAdapter:
        """Resolve ``ref`` under the loading policy; verifies status, base fingerprint and artifact hash."""
        return resolve_for_loading(
            self, ref, base_fingerprint=base_fingerprint, allow_unapproved=allow_unapproved
        )

    def diff(self, ref_a: str, ref_b: str) -> list[tuple[str, Any, Any]]:
        """Fields, training config and metrics (flattened) that differ between two versions."""
        a, b = self.get(ref_a), self.get(ref_b)
        flat_a, flat_b = comparable_fields(a), comparable_fields(b)
        keys = sorted(set(flat_a) | set(flat_b))
        return [(key, flat_a.get(key), flat_b.get(key)) for key in keys if flat_a.get(key) != flat_b.get(key)]


_DIFF_FIELDS = (
    "status",
    "artifact_sha256",
    "artifact_size",
    "adapter_type",
    "rank",
    "alpha",
    "target_modules",
    "base_fingerprint",
    "dataset_manifest_sha256",
    "dataset_path",
    "code_version",
    "parent",
    "tags",
    "created_by",
    "created_at",
)


def comparable_fields(record: AdapterRecord) -> dict[str, Any]:
    """Flatten a record into ``dotted.key -> value`` for diffing."""
    out: dict[str, Any] = {name: getattr(record, name) for name in _DIFF_FIELDS}
    _flatten("training_config", record.training_config, out)
    _flatten("metrics", record.metrics, out)
    latest = record.latest_evaluation
    if latest is not None:
        _flatten("evaluation", latest.results, out)
    return out


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out)
    else:
        out[prefix] = value
