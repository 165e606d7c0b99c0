"""The adapter folder contract: weights + metadata, written by the trainer, read by everyone.

An adapter folder holds:

- ``pytorch_lora_weights.safetensors``: the diffusers/PEFT LoRA or DoRA state dict, exactly what
  stock ``save_lora_weights`` writes and ``load_lora_weights`` reads;
- ``adapter_metadata.json``: :class:`AdapterMetadata` (schema ``cosmos_ros.adapter/1``), optional
  for adapters made elsewhere (stock diffusers output has none).

Only safetensors weights are ever accepted: pickled ``.bin``/``.pt`` files can run code on load.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from cosmos_ros.atomic import atomic_write_text

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
METADATA_NAME = "adapter_metadata.json"
SCHEMA = "cosmos_ros.adapter/1"
ADAPTER_TYPES: tuple[str, ...] = ("lora", "dora")
#: The published recipe's LoRA targets inside each transformer block.
DEFAULT_TARGET_MODULES: tuple[str, ...] = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "ff.net.0.proj",
    "ff.net.2",
)


@dataclass
class AdapterMetadata:
    """What an adapter is, what it was made from and how well it did."""

    adapter_type: Literal["lora", "dora"]
    rank: int
    alpha: float
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    base_fingerprint: str | None = None
    dataset_manifest_sha256: str | None = None
    dataset_path: str | None = None
    training_config: dict[str, Any] = field(default_factory=dict)
    code_version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    parent: str | None = None
    schema: str = SCHEMA

    def __post_init__(self) -> None:
        if self.adapter_type not in ADAPTER_TYPES:
            raise ValueError(
                f"adapter_type {self.adapter_type!r} is not supported; accepted: {', '.join(ADAPTER_TYPES)}"
            )
        if int(self.rank) < 1:
            raise ValueError(f"rank must be a positive integer, got {self.rank!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> AdapterMetadata:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"{source}: schema {data.get('schema')!r} is not {SCHEMA!r}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"{source}: {exc}") from exc


def write_adapter_metadata(folder: str | os.PathLike[str], meta: AdapterMetadata) -> Path:
    """Write ``adapter_metadata.json`` into ``folder`` atomically."""
    return atomic_write_text(
        Path(folder) / METADATA_NAME, json.dumps(meta.to_dict(), indent=2, sort_keys=True)
    )


def read_adapter_metadata(folder: str | os.PathLike[str]) -> AdapterMetadata | None:
    """Read the folder's metadata, or ``None`` where the folder has none (stock diffusers output)."""
    path = Path(folder) / METADATA_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    return AdapterMetadata.from_dict(data, source=str(path))


def weights_path(folder_or_file: str | os.PathLike[str]) -> Path:
    """Resolve an adapter folder (or a direct .safetensors path) to its weights file.

    Refuses anything that is not safetensors, naming the file and what is accepted.
    """
    path = Path(folder_or_file)
    if path.is_dir():
        candidate = path / WEIGHTS_NAME
        if candidate.is_file():
            return candidate
        found = sorted(p.name for p in path.iterdir() if p.suffix == ".safetensors")
        if len(found) == 1:
            return path / found[0]
        pickled = sorted(p.name for p in path.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".ckpt"})
        hint = f" (found pickle files {pickled}, which are never loaded)" if pickled else ""
        raise FileNotFoundError(
            f"adapter folder {path} holds no {WEIGHTS_NAME}{hint}; accepted: one .safetensors file"
        )
    if not path.is_file():
        raise FileNotFoundError(f"adapter not found: {path}")
    if path.suffix != ".safetensors":
        raise ValueError(f"adapter file {path} is not a .safetensors file; only safetensors is accepted")
    return path


def sort_safetensors_metadata(path: str | os.PathLike[str]) -> bool:
    """Rewrite a safetensors header with its ``__metadata__`` keys sorted; True if it changed.

    Why: safetensors writes that map in hash order, which changes from one write to the next, so
    the same adapter got other bytes (and another registry sha256) each time diffusers' two keys
    (``format``, ``lora_adapter_metadata``) swapped. The tensors, offsets and header length stay
    as they are: the header is re-serialised compactly and padded with spaces as safetensors does.
    """
    import struct

    with open(path, "r+b") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        raw = fh.read(length)
        header = json.loads(raw)
        metadata = header.get("__metadata__")
        if not isinstance(metadata, dict) or list(metadata) == sorted(metadata):
            return False
        header["__metadata__"] = dict(sorted(metadata.items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > length:  # not the compact form this was written in: leave it alone
            return False
        fh.seek(8)
        fh.write(text + b" " * (length - len(text)))
    return True
