"""Stable identities of a model directory and of its parts.

A fingerprint hashes every config/tokenizer file in full, and each weight file by its size,
its safetensors header (names, shapes, dtypes, offsets) and samples of its data (all of it for
files up to 3 MiB). That tells checkpoints apart without reading 20 GB on every start, and is
stable across copies (no paths, no timestamps).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

_SAMPLE = 1 << 20  # bytes read at the start, middle and end of a large weight file
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def _file_digest(path: Path) -> str:
    size = path.stat().st_size
    h = hashlib.sha256()
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        if not path.name.endswith(_WEIGHT_SUFFIXES) or size <= 3 * _SAMPLE:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        else:
            for offset in (0, size // 2, size - _SAMPLE):
                fh.seek(offset)
                h.update(fh.read(_SAMPLE))
            if path.suffix == ".safetensors":
                fh.seek(0)
                header_len = int.from_bytes(fh.read(8), "little")
                if header_len < size:
                    h.update(fh.read(header_len))
    return h.hexdigest()


def _component_files(model_dir: Path, components: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for name in components:
        folder = model_dir / name
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return files


def _digest_files(model_dir: Path, files: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        h.update(_file_digest(path).encode() + b"\n")
    return "sha256:" + h.hexdigest()


def model_components(model_dir: str | os.PathLike[str]) -> list[str]:
    """Component folder names listed in ``model_index.json`` (sorted)."""
    index = json.loads((Path(model_dir) / "model_index.json").read_text(encoding="utf-8"))
    return sorted(k for k, v in index.items() if not k.startswith("_") and isinstance(v, list))


def model_fingerprint(model_dir: str | os.PathLike[str]) -> str:
    """Fingerprint of a whole diffusers model directory: ``"sha256:<hex>"``."""
    model_dir = Path(model_dir)
    index = model_dir / "model_index.json"
    if not index.is_file():
        raise FileNotFoundError(f"{model_dir} has no model_index.json; not a diffusers model directory")
    return _digest_files(model_dir, [index, *_component_files(model_dir, model_components(model_dir))])


def component_fingerprint(model_dir: str | os.PathLike[str], components: Iterable[str]) -> str:
    """Fingerprint of some components only (the prompt cache keys on text_encoder + tokenizer)."""
    model_dir = Path(model_dir)
    return _digest_files(model_dir, _component_files(model_dir, sorted(components)))
