"""Registry records: what one registered adapter version is, and how its status may change.

Everything that describes the artifact (hash, base fingerprint, type, rank, targets, dataset,
training config, code version, training metrics, lineage) is fixed at registration: registered
artifacts are immutable. What changes later is kept as appended entries: status changes
(approvals included) and evaluation results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from cosmos_ros.registry.names import adapter_id

RECORD_SCHEMA = "cosmos_ros.registry-record/1"

STATUSES: tuple[str, ...] = ("draft", "candidate", "approved", "deprecated", "revoked")
#: The status machine: draft -> candidate -> approved -> deprecated | revoked. Revocation is
#: final and possible from anywhere (a recall); a candidate can be sent back to draft and a
#: deprecated version re-approved.
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"candidate", "revoked"}),
    "candidate": frozenset({"approved", "draft", "revoked"}),
    "approved": frozenset({"deprecated", "revoked"}),
    "deprecated": frozenset({"approved", "revoked"}),
    "revoked": frozenset(),
}


class RegistryError(Exception):
    """Base class of every error the registry raises on purpose."""


class AdapterNotFoundError(RegistryError, KeyError):
    """No record matches the reference."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StatusTransitionError(RegistryError):
    """A status change the status machine or the approval gate does not allow."""


class ArtifactError(RegistryError):
    """An artifact that is not acceptable safetensors, or does not match its recorded hash."""


class AdapterRefusedError(RegistryError):
    """The loading policy refuses this adapter (status, base model or integrity)."""


class BundleError(RegistryError):
    """An export bundle that is malformed or unsafe to import."""


def check_transition(current: str, new: str, ref: str) -> None:
    """Raise :class:`StatusTransitionError` unless ``current -> new`` is an allowed step."""
    if new not in STATUSES:
        raise StatusTransitionError(f"{ref}: unknown status {new!r}; statuses: {', '.join(STATUSES)}")
    allowed = TRANSITIONS[current]
    if new not in allowed:
        reach = ", ".join(sorted(allowed)) or "nothing (revoked is final)"
        raise StatusTransitionError(
            f"{ref}: cannot go from {current} to {new}; from {current} it can go to {reach}"
        )


def utc_now() -> str:
    """UTC timestamp with microseconds, sortable as text."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class StatusChange:
    """One status change: who moved the adapter from what to what, when and why."""

    from_status: str | None
    to_status: str
    by: str
    at: str
    note: str | None = None
    force_reason: str | None = None


@dataclass(frozen=True)
class EvaluationEntry:
    """Evaluation results attached to a version (by the evaluation runner or by hand)."""

    results: dict[str, Any]
    by: str
    at: str


@dataclass(frozen=True)
class AdapterRecord:
    """One registered adapter version."""

    name: str
    version: int
    artifact_sha256: str
    artifact_size: int
    status: str
    adapter_type: str | None = None
    rank: int | None = None
    alpha: float | None = None
    target_modules: list[str] = field(default_factory=list)
    base_fingerprint: str | None = None
    dataset_manifest_sha256: str | None = None
    dataset_path: str | None = None
    training_config: dict[str, Any] = field(default_factory=dict)
    code_version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    tags: list[str] = field(default_factory=list)
    created_by: str = "unknown"
    created_at: str = ""
    note: str | None = None
    tensor_count: int = 0
    history: list[StatusChange] = field(default_factory=list)
    evaluations: list[EvaluationEntry] = field(default_factory=list)
    #: For an imported version: where it came from and what its exporter recorded (status,
    #: history, evaluations), kept as provenance and never trusted as this registry's own.
    provenance: dict[str, Any] | None = None

    @property
    def adapter_id(self) -> str:
        return adapter_id(self.name, self.version)

    @property
    def approvals(self) -> list[StatusChange]:
        """The approval entries (who approved, when, with what note)."""
        return [change for change in self.history if change.to_status == "approved"]

    @property
    def latest_evaluation(self) -> EvaluationEntry | None:
        return self.evaluations[-1] if self.evaluations else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["adapter_id"] = self.adapter_id
        data["schema"] = RECORD_SCHEMA
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> AdapterRecord:
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a record is a JSON object, got {type(data).__name__}")
        if data.get("schema") != RECORD_SCHEMA:
            raise ValueError(f"{source}: record schema {data.get('schema')!r} is not {RECORD_SCHEMA!r}")
        fields = dict(data)
        fields.pop("schema")
        fields.pop("adapter_id", None)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"{source}: unknown record field(s) {unknown}")
        try:
            for key, kind in (("history", StatusChange), ("evaluations", EvaluationEntry)):
                entries = fields.get(key, [])
                if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                    raise ValueError(f"{source}: record field {key!r} must be a list of JSON objects")
                fields[key] = [kind(**entry) for entry in entries]
            if not isinstance(fields.get("provenance") or {}, dict):
                raise ValueError(f"{source}: record field 'provenance' must be a JSON object or null")
            return cls(**fields)
        except TypeError as exc:
            raise ValueError(f"{source}: {exc}") from exc


@dataclass(frozen=True)
class CatalogEntry:
    """The cheap listing the generation node shows: which versions exist and in what status."""

    name: str
    version: int
    status: str
    base_fingerprint: str | None
    artifact_sha256: str
    created_at: str

    @property
    def adapter_id(self) -> str:
        return adapter_id(self.name, self.version)


@dataclass(frozen=True)
class Problem:
    """One finding of ``verify``: ``kind`` is machine-readable, ``message`` says what and where."""

    #: missing_artifact | hash_mismatch | size_mismatch | orphan_blob | temp_file | stray_file | database
    #: | database_row (a row edited, added or deleted outside the registry: see ``chain.py``)
    kind: str
    subject: str
    message: str


@dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit log."""

    seq: int
    at: str
    actor: str
    action: str
    adapter_id: str | None
    details: dict[str, Any]
