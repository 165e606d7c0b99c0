"""Content-addressed artifact store: ``blobs/sha256/<hex>.safetensors``, atomic, read-only once written.

The ``.safetensors`` suffix lets the stored file be handed straight to loaders that go by the
suffix (``adapter_folder.weights_path``, diffusers ``load_lora_weights``).

Only safetensors files are accepted: the header is parsed with the ``safetensors`` library before
a blob gets its final name, so a pickle, a truncated file or random bytes never enter the store.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cosmos_ros.atomic import atomic_path
from cosmos_ros.registry.records import ArtifactError

CHUNK = 4 * 1024 * 1024
SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
BLOB_SUFFIX = ".safetensors"
_BLOB_RE = re.compile(r"^([0-9a-f]{64})\.safetensors\Z")
#: Fault injection for crash tests: when this variable names a point that the code passes, the
#: process kills itself with SIGKILL there (no cleanup handlers run, just like a power cut).
FAULT_ENV = "COSMOS_ROS_REGISTRY_FAULT"
_LORA_A_MARKERS = (".lora_A.", ".lora_down.")
_DORA_MARKERS = ("lora_magnitude_vector", "dora_scale")


def fault_point(name: str) -> None:
    """Die here (SIGKILL) if the fault-injection variable names this point; a no-op otherwise."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class SafetensorsInfo:
    """What the header of a safetensors file says, and what it suggests about the adapter."""

    tensor_count: int
    file_metadata: dict[str, str] = field(default_factory=dict)
    inferred_type: str | None = None
    inferred_rank: int | None = None
    inferred_targets: list[str] = field(default_factory=list)


def inspect_safetensors(path: str | os.PathLike[str], label: str | None = None) -> SafetensorsInfo:
    """Parse the safetensors header of ``path`` (no tensor data is read); refuse anything else."""
    from safetensors import SafetensorError, safe_open

    label = label or str(path)
    try:
        with safe_open(os.fspath(path), framework="numpy") as handle:
            keys = list(handle.keys())
            file_metadata = dict(handle.metadata() or {})
            shapes = {key: handle.get_slice(key).get_shape() for key in keys if _is_lora_a(key)}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(
            f"{label} is not a valid safetensors file ({exc}); only safetensors is accepted"
        ) from exc
    if not keys:
        raise ArtifactError(f"{label} is a safetensors file without tensors; an adapter needs its weights")
    rank = None
    targets: set[str] = set()
    for key, shape in shapes.items():
        if rank is None and len(shape) >= 1:
            rank = int(shape[0])
        targets.add(_module_path(key))
    is_dora = any(marker in key for key in keys for marker in _DORA_MARKERS)
    inferred_type = "dora" if is_dora else ("lora" if shapes else None)
    return SafetensorsInfo(len(keys), file_metadata, inferred_type, rank, sorted(targets))


def _is_lora_a(key: str) -> bool:
    return any(marker in key for marker in _LORA_A_MARKERS)


def _module_path(key: str) -> str:
    """``transformer.transformer_blocks.0.attn1.to_q.lora_A.weight`` -> ``attn1.to_q``."""
    for marker in _LORA_A_MARKERS:
        if marker in key:
            key = key.split(marker, 1)[0]
            break
    parts = key.split(".")
    for index, part in enumerate(parts):
        if part.isdigit() and index + 1 < len(parts):
            return ".".join(parts[index + 1 :])
    return key


def sha256_file(
    path: str | os.PathLike[str], on_bytes: Callable[[int], None] | None = None
) -> tuple[str, int]:
    """Stream-hash a file; returns (hex digest, size)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return digest.hexdigest(), size


class ArtifactStore:
    """Blobs named ``<sha256>.safetensors`` under ``<root>/blobs/sha256``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.blob_dir = Path(root) / "blobs" / "sha256"
        self.blob_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise ArtifactError(f"{sha256!r} is not a sha256 hex digest (64 lowercase hex characters)")
        return self.blob_dir / f"{sha256}{BLOB_SUFFIX}"

    @staticmethod
    def digest_of(blob: Path) -> str:
        """The sha256 a blob is named after."""
        match = _BLOB_RE.match(blob.name)
        if match is None:
            raise ArtifactError(f"{blob} is not named like a blob (<sha256>{BLOB_SUFFIX})")
        return match.group(1)

    def has_intact(self, sha256: str) -> bool:
        """True where the blob exists and still hashes to its name."""
        path = self.path_for(sha256)
        return path.is_file() and sha256_file(path)[0] == sha256

    def put(self, source: BinaryIO, sha256: str, label: str) -> Path:
        """Copy ``source`` into the store as blob ``sha256``; atomic, hash-checked, header-checked.

        A blob that already exists and is intact is kept (content addressing deduplicates); a
        damaged one is replaced by the good copy.
        """
        final = self.path_for(sha256)
        if final.is_file() and sha256_file(final)[0] == sha256:
            os.utime(final)  # fresh again: gc's grace period now protects it until the record commits
            return final
        with atomic_path(final) as tmp:
            digest = hashlib.sha256()
            with open(tmp, "wb") as out:
                first = True
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    if first:
                        out.flush()
                        fault_point("during_copy")
                        first = False
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                raise ArtifactError(
                    f"{label}: content hashes to {digest.hexdigest()}, expected {sha256} "
                    "(changed while copying?)"
                )
            inspect_safetensors(tmp, label)
            os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            if final.exists():  # a damaged blob: make room for the good copy
                os.chmod(final, stat.S_IRUSR | stat.S_IWUSR)
        return final

    def iter_blobs(self) -> list[Path]:
        return sorted(p for p in self.blob_dir.iterdir() if p.is_file() and _BLOB_RE.match(p.name))

    def iter_temp_files(self) -> list[Path]:
        """Leftovers of interrupted writes (``atomic_path`` temporaries) anywhere in the store."""
        root = self.blob_dir.parent.parent
        return sorted(p for p in root.rglob("*.part") if p.name.startswith("."))

    def iter_strays(self) -> list[Path]:
        """Files in the blob folder that are neither blobs nor temporaries."""
        return sorted(
            p for p in self.blob_dir.iterdir() if not _BLOB_RE.match(p.name) and not p.name.endswith(".part")
        )

    @staticmethod
    def remove(path: Path) -> None:
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
            return
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        path.unlink()
