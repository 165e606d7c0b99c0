"""Export bundles: one adapter version (record + artifact) in a tar archive, to move between sites.

Layout (plain tar, optionally gzip-compressed by whoever ships it)::

    bundle.json                      {"schema", "exported_at", "artifact", "record": {...}}
    artifact/<sha256>.safetensors    the weights

Import never extracts: members are read as streams, and the archive is refused outright if it
holds anything else, links, absolute paths or ``..`` components, so a crafted bundle cannot
write outside the registry. The artifact is hash-checked and its safetensors header parsed
before it enters the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import lzma
import os
import re
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from cosmos_ros.atomic import atomic_path
from cosmos_ros.registry.artifacts import SHA256_RE, inspect_safetensors
from cosmos_ros.registry.names import InvalidNameError, validate_name, validate_tag
from cosmos_ros.registry.records import STATUSES, AdapterRecord, ArtifactError, BundleError, utc_now

BUNDLE_SCHEMA = "cosmos_ros.registry-bundle/1"
MANIFEST_NAME = "bundle.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_ARTIFACT_RE = re.compile(r"^artifact/[0-9a-f]{64}\.safetensors\Z")
#: What reading a cut-off or corrupted archive raises (tarfile does not wrap the decompressors').
_READ_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError)
_CHUNK = 4 * 1024 * 1024


def artifact_member(sha256: str) -> str:
    return f"artifact/{sha256}.safetensors"


def write_bundle(path: str | os.PathLike[str], record: AdapterRecord, blob: Path) -> Path:
    """Write the bundle atomically; member metadata is fixed so equal inputs give equal archives."""
    manifest = {
        "schema": BUNDLE_SCHEMA,
        "exported_at": utc_now(),
        "artifact": artifact_member(record.artifact_sha256),
        "record": record.to_dict(),
    }
    payload = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_member(MANIFEST_NAME, len(payload)), io.BytesIO(payload))
        with open(blob, "rb") as fh:
            tar.addfile(_member(artifact_member(record.artifact_sha256), blob.stat().st_size), fh)
    return Path(path)


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o444
    info.mtime = 0
    return info


def check_member_name(name: str, bundle: str) -> None:
    """Refuse absolute paths, ``..``, backslashes and control characters in member names."""
    shown = ascii(name)
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise BundleError(f"{bundle}: member {shown} has an absolute path; refused")
    if "\\" in name or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise BundleError(f"{bundle}: member {shown} has a backslash or control character; refused")
    if ".." in PurePosixPath(name).parts:
        raise BundleError(f"{bundle}: member {shown} contains '..' (path traversal); refused")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _incomplete(label: str, exc: BaseException) -> BundleError:
    return BundleError(
        f"{label} is not a complete adapter bundle (truncated or not a bundle): {_one_line(exc)}"
    )


@contextlib.contextmanager
def open_bundle(path: str | os.PathLike[str]) -> Iterator[tuple[AdapterRecord, IO[bytes]]]:
    """Check a bundle and yield its record and a stream of its artifact.

    Read errors of a cut-off archive (while listing it, or later while the caller reads the
    stream) become :class:`BundleError`, so callers see one kind of refusal for every bad bundle.
    """
    label = str(path)
    if not Path(path).exists():
        raise BundleError(f"bundle {label} not found; give the .tar written by 'cosmos-ros adapters export'")
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        # tarfile lists every method it tried on separate lines: say it once.
        plain = isinstance(exc, tarfile.ReadError)
        why = "not a tar archive, plain or compressed" if plain else _one_line(exc)
        raise BundleError(
            f"{label} is not a readable bundle archive ({why}); a bundle is the .tar written by "
            "'cosmos-ros adapters export'"
        ) from exc
    with tar:
        try:
            record, stream = _check_members(tar, label)
        except (*_READ_ERRORS, OSError) as exc:  # only the archive is read here
            raise _incomplete(label, exc) from exc
        try:
            yield record, stream
        except _READ_ERRORS as exc:  # the caller's reads of the artifact stream
            raise _incomplete(label, exc) from exc


def _check_members(tar: tarfile.TarFile, label: str) -> tuple[AdapterRecord, IO[bytes]]:
    members = tar.getmembers()
    by_name: dict[str, tarfile.TarInfo] = {}
    for member in members:
        check_member_name(member.name, label)
        if not member.isreg():
            kind = "link" if (member.issym() or member.islnk()) else "non-file entry"
            raise BundleError(f"{label}: member {member.name!r} is a {kind}; bundles hold regular files only")
        if member.name in by_name:
            raise BundleError(f"{label}: member {member.name!r} appears twice; refused")
        by_name[member.name] = member
    if MANIFEST_NAME not in by_name:
        raise BundleError(f"{label}: no {MANIFEST_NAME}; not a cosmos_ros adapter bundle")
    extra = sorted(name for name in by_name if name != MANIFEST_NAME and not _ARTIFACT_RE.match(name))
    if extra:
        raise BundleError(
            f"{label}: unexpected member(s) {extra}; a bundle holds {MANIFEST_NAME} and one "
            "artifact/<sha256>.safetensors (only safetensors artifacts are accepted)"
        )
    manifest_member = by_name[MANIFEST_NAME]
    if manifest_member.size > MAX_MANIFEST_BYTES:
        raise BundleError(
            f"{label}: {MANIFEST_NAME} is {manifest_member.size} bytes, larger than any real one"
        )
    record = _read_manifest(tar, manifest_member, label)
    expected = artifact_member(record.artifact_sha256)
    artifacts = [name for name in by_name if name != MANIFEST_NAME]
    if artifacts != [expected]:
        raise BundleError(f"{label}: expected exactly the artifact member {expected!r}, found {artifacts}")
    if by_name[expected].size != record.artifact_size:
        raise BundleError(
            f"{label}: artifact has {by_name[expected].size} bytes, the record says {record.artifact_size}"
        )
    stream = tar.extractfile(by_name[expected])
    if stream is None:
        raise BundleError(f"{label}: cannot read {expected}")
    return record, stream


def check_bundle(path: str | os.PathLike[str]) -> AdapterRecord:
    """Read a whole bundle without a registry: structure, manifest, artifact hash and header.

    Why: ``adapters import`` runs this before it opens (and so creates) the registry, so a
    truncated, foreign or tampered bundle leaves no empty registry behind. The artifact goes
    through the same safetensors check (:func:`inspect_safetensors`) the store applies when it
    copies it in, on a private temporary copy.
    """
    label = str(path)
    with tempfile.TemporaryDirectory(prefix="cosmos_ros_bundle_") as tmp:
        copy = Path(tmp) / "artifact.safetensors"
        digest = hashlib.sha256()
        with open_bundle(path) as (record, stream), open(copy, "wb") as out:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != record.artifact_sha256:
            raise BundleError(
                f"{label}: artifact hashes to {digest.hexdigest()}, but the record says "
                f"{record.artifact_sha256} (damaged or tampered); nothing imported"
            )
        try:
            inspect_safetensors(copy, f"{label}: artifact")
        except ArtifactError as exc:
            raise BundleError(str(exc)) from exc
    return record


def _read_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo, label: str) -> AdapterRecord:
    stream = tar.extractfile(member)
    if stream is None:
        raise BundleError(f"{label}: cannot read {MANIFEST_NAME}")
    try:
        manifest = json.loads(stream.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{label}: {MANIFEST_NAME} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != BUNDLE_SCHEMA:
        found = manifest.get("schema") if isinstance(manifest, dict) else None
        raise BundleError(f"{label}: bundle schema {found!r} is not {BUNDLE_SCHEMA!r}")
    try:
        record = AdapterRecord.from_dict(manifest.get("record") or {}, source=f"{label}:{MANIFEST_NAME}")
        validate_name(record.name)
    except (ValueError, InvalidNameError) as exc:
        raise BundleError(str(exc)) from exc
    if record.status not in STATUSES:
        raise BundleError(f"{label}: record status {record.status!r} is not one of {', '.join(STATUSES)}")
    try:
        for tag in record.tags:
            validate_tag(tag)
    except InvalidNameError as exc:
        raise BundleError(f"{label}: {exc}") from exc
    if not isinstance(record.version, int) or record.version < 1:
        raise BundleError(f"{label}: record version {record.version!r} is not a positive integer")
    if not SHA256_RE.match(str(record.artifact_sha256)):
        raise BundleError(
            f"{label}: record artifact_sha256 {record.artifact_sha256!r} is not a sha256 hex digest"
        )
    return record
