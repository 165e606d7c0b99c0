"""Which adapters the generation node may use: registry references and plain adapter folders.

Plain Python (no rclpy): the node's ``adapter`` parameter callback, its goals and its
ListAdapters service all go through :class:`AdapterCatalog`, so the policy is one piece of code.

Accepted references:

- ``""`` or ``"none"``: the base model, no adapter;
- ``name``, ``name@3``, ``name@approved`` ...: a registry record, checked by the registry's loading
  policy (status, base-model fingerprint, artifact hash);
- a path to an adapter folder (or a ``.safetensors`` file): for users without a registry. Paths are
  accepted only when no registry is configured or ``allow_unapproved`` is set, so a node that
  runs from a registry cannot be talked into loading unreviewed weights. The base fingerprint in
  the folder's ``adapter_metadata.json`` (when present) must match the loaded base model.

Registry artifacts are loaded through :func:`verified_weights`: the bytes are re-hashed when they
are read for loading (as the evaluation protocol does), so a blob swapped after ``resolve`` is refused.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmos_ros.model.adapter_folder import read_adapter_metadata, weights_path

BASE_MODEL_REFS = ("", "none")


class AdapterRejected(ValueError):
    """The reference is unknown, refused by the policy, or its files are broken."""


@dataclass(frozen=True)
class ResolvedAdapter:
    """An adapter that passed the checks: what to call it and where its weights are."""

    adapter_id: str
    name: str
    version: int
    status: str
    weights: Path
    adapter_type: str = ""
    rank: int = 0
    base_fingerprint: str = ""
    loadable: Any = None  # the registry's LoadableAdapter (None for folder paths)


@contextmanager
def verified_weights(resolved: ResolvedAdapter) -> Iterator[Path]:
    """The path to load ``resolved`` from; registry artifacts are re-verified at this moment.

    The registry checked the artifact's hash in ``resolve``; loading ``weights`` later would read
    whatever lies there by then. So the load reads ``LoadableAdapter.verified_file``: a private copy
    of exactly the bytes whose hash was checked (removed on exit).
    """
    if resolved.loadable is None:
        yield resolved.weights
        return
    from cosmos_ros.registry.records import RegistryError

    with contextlib.ExitStack() as stack:
        try:  # only the copy's own check becomes a rejection, not errors of the caller's load
            path = stack.enter_context(resolved.loadable.verified_file())
        except (RegistryError, OSError) as exc:
            raise AdapterRejected(f"adapter {resolved.adapter_id} refused: {exc}") from exc
        yield path


def looks_like_path(ref: str) -> bool:
    return os.sep in ref or ref.startswith((".", "~")) or ref.endswith(".safetensors")


class AdapterCatalog:
    """Resolves references against an optional registry and lists what is available."""

    def __init__(
        self, registry_path: str = "", *, allow_unapproved: bool = False, base_fingerprint: str = ""
    ):
        self.allow_unapproved = allow_unapproved
        self.base_fingerprint = base_fingerprint
        self.registry: Any = None
        if registry_path:
            from cosmos_ros.registry import open_registry

            self.registry = open_registry(registry_path)

    def close(self) -> None:
        if self.registry is not None:
            self.registry.close()
            self.registry = None

    def resolve(self, ref: str) -> ResolvedAdapter | None:
        """The checked adapter for ``ref``; None for the base model; AdapterRejected otherwise."""
        ref = ref.strip()
        if ref.lower() in BASE_MODEL_REFS:
            return None
        if looks_like_path(ref) or (self.registry is None and Path(ref).expanduser().exists()):
            return self._resolve_path(ref)
        if self.registry is None:
            raise AdapterRejected(
                f"adapter {ref!r}: no registry is configured (parameter registry_path), so only adapter "
                "folder paths are accepted"
            )
        from cosmos_ros.registry.records import RegistryError

        try:
            loadable = self.registry.resolve_for_loading(
                ref, base_fingerprint=self.base_fingerprint or None, allow_unapproved=self.allow_unapproved
            )
        except (RegistryError, ValueError) as exc:
            raise AdapterRejected(f"adapter {ref!r} refused: {exc}") from exc
        record = loadable.record
        return ResolvedAdapter(
            adapter_id=record.adapter_id,
            name=record.name,
            version=record.version,
            status=record.status,
            weights=loadable.weights_path,
            adapter_type=record.adapter_type or "",
            rank=record.rank or 0,
            base_fingerprint=record.base_fingerprint or "",
            loadable=loadable,
        )

    def _resolve_path(self, ref: str) -> ResolvedAdapter:
        if self.registry is not None and not self.allow_unapproved:
            raise AdapterRejected(
                f"adapter path {ref!r} refused: this node loads adapters from its registry only "
                "(register the folder, or set allow_unapproved)"
            )
        path = Path(ref).expanduser()
        try:
            weights = weights_path(path)
            meta = read_adapter_metadata(path) if path.is_dir() else None
        except (OSError, ValueError) as exc:
            raise AdapterRejected(f"adapter folder {path}: {exc}") from exc
        if not weights.is_file():
            raise AdapterRejected(f"adapter folder {path}: weights file {weights} does not exist")
        base = (meta.base_fingerprint if meta else None) or ""
        if base and self.base_fingerprint and base != self.base_fingerprint:
            raise AdapterRejected(
                f"adapter folder {path} was trained on base model {base}, "
                f"but the loaded base model is {self.base_fingerprint}"
            )
        name = path.stem if path.is_file() else path.name
        return ResolvedAdapter(
            adapter_id=name,
            name=name,
            version=0,
            status="unregistered",
            weights=path,
            adapter_type=meta.adapter_type if meta else "",
            rank=int(meta.rank) if meta else 0,
            base_fingerprint=base,
        )

    def listing(self, name_filter: str = "") -> list[dict[str, Any]]:
        """Registry versions (name, version, status, ...) for the ListAdapters service."""
        if self.registry is None:
            return []
        rows = []
        for record in self.registry.list():
            if name_filter and name_filter not in record.name:
                continue
            rows.append(
                {
                    "name": record.name,
                    "version": int(record.version),
                    "adapter_id": record.adapter_id,
                    "status": record.status,
                    "adapter_type": record.adapter_type or "",
                    "rank": int(record.rank or 0),
                    "base_fingerprint": record.base_fingerprint or "",
                }
            )
        return rows
