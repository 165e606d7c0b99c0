"""Full sha256 hashes of a model folder's files, recorded once and checked against later.

The fingerprint (fingerprint.py) samples large weight files so that every start stays fast; a
flipped bit between its samples goes unnoticed and the model runs. A manifest holds the full
sha256 and size of every file the fingerprint covers (``model_index.json`` and the component
folders). ``cosmos-ros model verify MODEL --write`` records it from weights you trust (right
after a download); ``cosmos-ros model verify MODEL`` re-hashes every file and names each one
that differs. Loading checks only what is cheap: that every listed file is there with its size.

Without a manifest, a folder in the Hugging Face hub cache still carries the expected hashes:
its large files are links to blobs named by their sha256, which verify uses.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cosmos_ros.atomic import atomic_write_text

MANIFEST_NAME = "cosmos_ros_manifest.json"
SCHEMA = "cosmos_ros.model_manifest/1"
_HUB_BLOB = re.compile(r"^[0-9a-f]{64}\Z")


class ManifestError(ValueError):
    """The manifest is missing, unreadable, or the model's files do not match it."""


@dataclass
class Mismatch:
    """One file that differs from the manifest: its path in the model folder and how."""

    path: str
    problem: str


@dataclass
class VerifyReport:
    """What :func:`verify` found; ``ok`` when every file matched."""

    manifest: str
    checked: int
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def default_manifest_path(model_dir: str | os.PathLike[str]) -> Path:
    return Path(model_dir) / MANIFEST_NAME


def model_files(model_dir: str | os.PathLike[str]) -> list[str]:
    """The files a manifest covers (those the fingerprint covers), relative POSIX paths, sorted."""
    from cosmos_ros.model.fingerprint import model_components

    root = Path(model_dir)
    found = ["model_index.json"]
    for name in model_components(root):
        folder = root / name
        if folder.is_dir():
            found += [
                p.relative_to(root).as_posix()
                for p in folder.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
            ]
    return sorted(found)


def write_manifest(
    model_dir: str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """Hash every model file and write the manifest (replacing one that is there); returns its path."""
    from cosmos_ros.model.fingerprint import model_fingerprint
    from cosmos_ros.registry.artifacts import sha256_file

    root = Path(model_dir)
    files: dict[str, dict[str, Any]] = {}
    for rel in model_files(root):
        digest, size = sha256_file(root / rel, on_bytes)
        files[rel] = {"sha256": digest, "size": size}
    target = Path(path) if path is not None else default_manifest_path(root)
    data = {
        "schema": SCHEMA,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "fingerprint": model_fingerprint(root),
        "files": files,
    }
    return atomic_write_text(target, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_manifest(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The manifest's ``files`` table; ManifestError naming the file where it is not a manifest."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"no manifest at {path}") from exc
    except (OSError, ValueError) as exc:
        raise ManifestError(f"manifest {path} is unreadable ({exc}); record it again with --write") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(files, dict):
        raise ManifestError(f"{path} is not a {SCHEMA} manifest; record one with --write")
    for rel, entry in files.items():
        if (
            not isinstance(entry, dict)
            or not _HUB_BLOB.match(str(entry.get("sha256")))
            or not isinstance(entry.get("size"), int)
        ):
            raise ManifestError(f"{path}: the entry of {rel} has no sha256 and size; record it again")
    return files


def hub_cache_hashes(model_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Expected hashes that a hub-cache snapshot carries: files linked to blobs named by their sha256."""
    root = Path(model_dir)
    found: dict[str, dict[str, Any]] = {}
    for rel in model_files(root):
        link = root / rel
        if link.is_symlink() and _HUB_BLOB.match(link.resolve().name):
            found[rel] = {"sha256": link.resolve().name, "size": None}
    return found


def expected_hashes(
    model_dir: str | os.PathLike[str], path: str | os.PathLike[str] | None = None
) -> tuple[str, dict[str, dict[str, Any]]]:
    """(where the hashes come from, the table): the manifest, else a hub-cache snapshot's blob names."""
    manifest = Path(path) if path is not None else default_manifest_path(model_dir)
    if path is not None or manifest.is_file():
        return str(manifest), read_manifest(manifest)
    hub = hub_cache_hashes(model_dir)
    if any(rel.endswith(".safetensors") for rel in hub):
        return "the hub cache's blob names", hub
    raise ManifestError(
        f"no manifest at {manifest} to verify {model_dir} against; record one from weights you trust "
        f"with: cosmos-ros model verify {model_dir} --write"
    )


def verify(
    model_dir: str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Re-hash every model file against the expected hashes; every difference by file name."""
    from cosmos_ros.registry.artifacts import sha256_file

    root = Path(model_dir)
    source, expected = expected_hashes(root, path)
    report = VerifyReport(manifest=source, checked=0)
    present = set(model_files(root))
    for rel in sorted(set(expected) | present):
        entry = expected.get(rel)
        if entry is None:
            if source != "the hub cache's blob names":
                report.mismatches.append(Mismatch(rel, "not in the manifest (added since it was recorded)"))
            continue
        if rel not in present:
            report.mismatches.append(Mismatch(rel, "missing"))
            continue
        digest, size = sha256_file(root / rel, on_bytes)
        report.checked += 1
        if entry["size"] is not None and size != entry["size"]:
            report.mismatches.append(Mismatch(rel, f"{size} bytes, the manifest records {entry['size']}"))
        elif digest != entry["sha256"]:
            report.mismatches.append(Mismatch(rel, "content differs (sha256 mismatch): damaged or replaced"))
    return report


def check_sizes(model_dir: str | os.PathLike[str]) -> None:
    """The cheap check done at every load: each file of the folder's manifest is there with its size.

    No manifest: nothing to check. Raises ManifestError naming the first file that differs.
    """
    root = Path(model_dir)
    manifest = default_manifest_path(root)
    if not manifest.is_file():
        return
    for rel, entry in read_manifest(manifest).items():
        file = root / rel
        if not file.is_file():
            raise ManifestError(
                f"{file} is missing (listed in {manifest}); run: cosmos-ros model verify {root}"
            )
        size = file.stat().st_size
        if size != entry["size"]:
            raise ManifestError(
                f"{file} is {size} bytes, but {manifest} records {entry['size']}: damaged or replaced; "
                f"run: cosmos-ros model verify {root}"
            )
