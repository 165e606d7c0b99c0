"""The loading policy: which registered adapter a generation node may load, checked before loading.

A node is configured with a reference (``name``, ``name@3`` or ``name@approved``) and whether it
may load adapters that are not approved. Before anything reaches the model:

- revoked adapters are always refused (a recall);
- draft and candidate adapters are refused unless ``allow_unapproved``; deprecated ones load
  (they were approved and may still be pinned) with a warning;
- the record's base-model fingerprint must equal the loaded base model's fingerprint;
- where this site's ``policy.yaml`` requires signatures, an imported version must carry a
  verified signature from a key that is trusted *now* (untrusting a key recalls what it signed);
- the artifact is re-hashed and must match the sha256 recorded at registration.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosmos_ros.registry.artifacts import sha256_file
from cosmos_ros.registry.records import AdapterRecord, AdapterRefusedError

if TYPE_CHECKING:
    from cosmos_ros.registry.store import Registry

LOG = logging.getLogger(__name__)
LOADABLE_WITHOUT_OVERRIDE: frozenset[str] = frozenset({"approved", "deprecated"})


@dataclass(frozen=True)
class LoadableAdapter:
    """A record whose artifact passed the checks, and where its weights lie.

    ``weights_path`` is the content-addressed blob (no ``.safetensors`` suffix). For loading into
    diffusers prefer :meth:`state_dict`, which reads the bytes once and re-checks their hash, so a
    file swapped after the check is still caught.
    """

    record: AdapterRecord
    weights_path: Path

    @property
    def adapter_id(self) -> str:
        return self.record.adapter_id

    def read_verified_bytes(self) -> bytes:
        import hashlib

        data = self.weights_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.record.artifact_sha256:
            raise AdapterRefusedError(
                f"{self.adapter_id}: artifact {self.weights_path} changed after it was verified; "
                "refusing to load"
            )
        return data

    @contextlib.contextmanager
    def verified_file(self) -> Iterator[Path]:
        """A private ``.safetensors`` copy of the verified bytes, removed on exit.

        Why: loaders that take a path (``CosmosRuntime.load_adapter``) would otherwise read the
        blob again after the check; the copy holds exactly the bytes whose hash was checked.
        """
        data = self.read_verified_bytes()
        with tempfile.TemporaryDirectory(prefix="cosmos_ros_adapter_") as tmp:
            path = Path(tmp) / "weights.safetensors"
            path.write_bytes(data)
            yield path

    def state_dict(self, device: str = "cpu") -> dict[str, Any]:
        """The weights as a torch state dict (for ``pipe.load_lora_weights(state_dict, ...)``)."""
        from safetensors.torch import load

        tensors = load(self.read_verified_bytes())
        return {key: value.to(device) for key, value in tensors.items()} if device != "cpu" else tensors

    def file_metadata(self) -> dict[str, str]:
        """The safetensors ``__metadata__`` (diffusers keeps LoRA alpha/rank config there)."""
        from safetensors import safe_open

        with safe_open(str(self.weights_path), framework="numpy") as handle:
            return dict(handle.metadata() or {})


def check_status(record: AdapterRecord, *, allow_unapproved: bool) -> None:
    """Refuse records the policy does not let a node load."""
    if record.status == "revoked":
        raise AdapterRefusedError(f"{record.adapter_id} is revoked and is never loaded")
    if record.status not in LOADABLE_WITHOUT_OVERRIDE and not allow_unapproved:
        raise AdapterRefusedError(
            f"{record.adapter_id} is {record.status}, not approved; approve it "
            "('cosmos-ros adapters approve') or configure the node to allow unapproved adapters"
        )
    if record.status == "deprecated":
        LOG.warning("%s is deprecated; loading it anyway because it was approved", record.adapter_id)


def check_base(record: AdapterRecord, base_fingerprint: str | None, *, allow_unapproved: bool) -> None:
    """The adapter must have been trained on exactly the base model that is loaded."""
    if record.base_fingerprint is None:
        if allow_unapproved:
            LOG.warning(
                "%s records no base fingerprint; loading unchecked (unapproved allowed)", record.adapter_id
            )
            return
        raise AdapterRefusedError(
            f"{record.adapter_id} records no base-model fingerprint, so it cannot be checked"
        )
    if base_fingerprint != record.base_fingerprint:
        raise AdapterRefusedError(
            f"{record.adapter_id} was trained on base model {record.base_fingerprint}, "
            f"but the loaded base model is {base_fingerprint}"
        )


def check_artifact(record: AdapterRecord, path: Path) -> None:
    if not path.is_file():
        raise AdapterRefusedError(
            f"{record.adapter_id}: artifact {path} is missing; run 'cosmos-ros adapters verify'"
        )
    digest, size = sha256_file(path)
    if digest != record.artifact_sha256:
        raise AdapterRefusedError(
            f"{record.adapter_id}: artifact {path} hashes to {digest}, "
            f"but {record.artifact_sha256} was registered "
            "(tampered or damaged); refusing to load"
        )
    if size != record.artifact_size:  # equal hashes and different sizes cannot happen; kept as a guard
        raise AdapterRefusedError(
            f"{record.adapter_id}: artifact {path} has {size} bytes, {record.artifact_size} expected"
        )


def check_signature(registry: Registry, record: AdapterRecord) -> None:
    """Where the site requires signatures, an imported version loads only if a still-trusted key signed it.

    Why here and not only at import: the policy can change after the import (a key untrusted, or
    signatures required from now on), and loading is where that must take effect. Versions
    registered here (no provenance, no import in the audit log) are this site's own and pass.
    """
    from cosmos_ros.registry import site_policy

    root = getattr(registry, "root", None)
    if root is None:  # a backend without a site policy folder
        return
    provenance = record.provenance
    imported = provenance is not None or any(
        entry.action == "import" for entry in registry.audit_log(record.adapter_id)
    )
    if not imported:
        return
    hand_edit = getattr(registry, "policy_problem", lambda: None)()
    if hand_edit is not None:  # the policy judging this version is not the one recorded
        raise AdapterRefusedError(f"{record.adapter_id} is imported, and {hand_edit}; refusing to load")
    policy = site_policy.load_policy(root)
    if not policy.require_signatures:
        return
    where = f"{site_policy.policy_path(root)} has require_signatures: true"
    signature = provenance.get("signature") if isinstance(provenance, dict) else None
    if provenance is None:
        why = "was imported, but its provenance record is missing"
    elif not isinstance(signature, dict):
        why = "was imported unsigned"
    elif not signature.get("verified"):
        why = f"was imported with an unverified signature by {signature.get('signer')}"
    elif signature.get("signer") not in site_policy.trusted_keys(root, policy):
        why = f"was signed by {signature.get('signer')}, which is no longer a trusted key here"
    else:
        return
    raise AdapterRefusedError(
        f"{record.adapter_id} {why}, and {where}; refusing to load "
        "(re-import a bundle signed by a trusted key, or trust the signer with 'adapters policy --trust-key')"
    )


def resolve_for_loading(
    registry: Registry, ref: str, *, base_fingerprint: str | None, allow_unapproved: bool = False
) -> LoadableAdapter:
    """Resolve ``ref`` and run every check; cheap checks (status, base) before the re-hash."""
    record = registry.get(ref)
    check_status(record, allow_unapproved=allow_unapproved)
    check_base(record, base_fingerprint, allow_unapproved=allow_unapproved)
    check_signature(registry, record)
    path = registry.artifact_path(record)
    check_artifact(record, path)
    return LoadableAdapter(record, path)


@dataclass(frozen=True)
class LoadingPolicy:
    """What a node is configured with: a reference and whether unapproved adapters may load."""

    ref: str
    allow_unapproved: bool = False

    def resolve(self, registry: Registry, base_fingerprint: str | None) -> LoadableAdapter:
        return resolve_for_loading(
            registry, self.ref, base_fingerprint=base_fingerprint, allow_unapproved=self.allow_unapproved
        )
