"""The adapter registry: versions, lineage, approval and safe loading of LoRA/DoRA adapters.

>>> registry = open_registry()                       # $COSMOS_ROS_REGISTRY or ~/.cache/cosmos_ros/registry
>>> record = registry.register("runs/ur5e/adapter", "ur5e.pick")   # -> ur5e.pick@1, draft
>>> loadable = registry.resolve_for_loading("ur5e.pick@approved", base_fingerprint=fp)
"""

from __future__ import annotations

import os

from cosmos_ros.registry.chain import ChainError
from cosmos_ros.registry.dbfile import DatabaseFileError
from cosmos_ros.registry.evidence import EvidenceError
from cosmos_ros.registry.names import AdapterRef, InvalidNameError, parse_ref, validate_name
from cosmos_ros.registry.policy import LoadableAdapter, LoadingPolicy
from cosmos_ros.registry.records import (
    STATUSES,
    AdapterNotFoundError,
    AdapterRecord,
    AdapterRefusedError,
    ArtifactError,
    AuditEntry,
    BundleError,
    CatalogEntry,
    EvaluationEntry,
    Problem,
    RegistryError,
    StatusChange,
    StatusTransitionError,
)
from cosmos_ros.registry.store import Registry, default_registry_path
from cosmos_ros.registry.validation import InvalidRecordError


def open_registry(path: str | os.PathLike[str] | None = None) -> Registry:
    """Open (creating if needed) the registry at ``path``; default: :func:`default_registry_path`."""
    from cosmos_ros.registry.sqlite_store import SqliteRegistry

    return SqliteRegistry(path if path is not None else default_registry_path())


__all__ = [
    "STATUSES",
    "AdapterNotFoundError",
    "AdapterRecord",
    "AdapterRef",
    "AdapterRefusedError",
    "ArtifactError",
    "AuditEntry",
    "BundleError",
    "CatalogEntry",
    "ChainError",
    "DatabaseFileError",
    "EvaluationEntry",
    "EvidenceError",
    "InvalidNameError",
    "InvalidRecordError",
    "LoadableAdapter",
    "LoadingPolicy",
    "Problem",
    "Registry",
    "RegistryError",
    "StatusChange",
    "StatusTransitionError",
    "default_registry_path",
    "open_registry",
    "parse_ref",
    "validate_name",
]
