"""Export bundles: one adapter version (record + artifact) in a tar archive, to move between sites.

Layout (plain tar, optionally gzip-compressed by whoever ships it)::

    bundle.json                      {"schema", "exported_at", "artifact", "record": {...}}
    artifact/<sha256>.safetensors    the weights
    bundle.sig                       optional: model-signing's signature over bundle.json
                                     (see ``signing.py``; ``site_policy.py`` decides what it earns)

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
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from cosmos_ros.atomic import atomic_path
from cosmos_ros.registry.artifacts import fault_point, inspect_safetensors
from cosmos_ros.registry.records import AdapterRecord, ArtifactError, BundleError, utc_now
from cosmos_ros.registry.signing import MAX_SIGNATURE_BYTES, SIGNATURE_NAME
from cosmos_ros.registry.validation import InvalidRecordError, check_record

BUNDLE_SCHEMA = "cosmos_ros.registry-bundle/1"
MANIFEST_NAME = "bundle.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: The largest artifact an import accepts (LoRA/DoRA adapters are megabytes to a few GiB); a site
#: with bigger ones raises it through this variable. Checked before anything is extracted.
MAX_ARTIFACT_ENV = "COSMOS_ROS_MAX_ADAPTER_BYTES"
DEFAULT_MAX_ARTIFACT_BYTES = 8 * 1024**3
_ARTIFACT_RE = re.compile(r"^artifact/[0-9a-f]{64}\.safetensors\Z")
#: What reading a cut-off or corrupted archive raises (tarfile does not wrap the decompressors').
_READ_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError)
_CHUNK = 4 * 1024 * 1024
#: Called with the manifest's bytes and the signature's (``None`` if unsigned); raises to refuse.
SignatureCheck = Callable[[bytes, "bytes | None"], None]


def artifact_member(sha256: str) -> str:
    return f"artifact/{sha256}.safetensors"


def write_bundle(
    path: str | os.PathLike[str],
    record: AdapterRecord,
    blob: Path,
    sign: Callable[[bytes], bytes] | None = None,
) -> Path:
    """Write the bundle atomically; member metadata is fixed so equal inputs give equal archives.

    ``sign`` maps the manifest's bytes to a signature, stored as ``bundle.sig``; it runs before
    the archive is created, so a bad key leaves no bundle.
    """
    manifest = {
        "schema": BUNDLE_SCHEMA,
        "exported_at": utc_now(),
        "artifact": artifact_member(record.artifact_sha256),
        "record": record.to_dict(),
    }
    payload = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
    signature = sign(payload) if sign is not None else None
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_member(MANIFEST_NAME, len(payload)), io.BytesIO(payload))
        if signature is not None:
            tar.addfile(_member(SIGNATURE_NAME, len(signature)), io.BytesIO(signature))
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
def open_bundle(
    path: str | os.PathLike[str], check_signature: SignatureCheck | None = None
) -> Iterator[tuple[AdapterRecord, IO[bytes]]]:
    """Check a bundle and yield its record and a stream of its artifact.

    ``check_signature`` sees the very manifest bytes the record is read from (one read, so the
    bundle cannot change between the signature check and its use), before the record is parsed.

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
            record, stream = _check_members(tar, label, check_signature)
        except (*_READ_ERRORS, OSError) as exc:  # only the archive is read here
            raise _incomplete(label, exc) from exc
        try:
            yield record, stream
        except _READ_ERRORS as exc:  # the caller's reads of the artifact stream
            raise _incomplete(label, exc) from exc


def _check_members(
    tar: tarfile.TarFile, label: str, check_signature: SignatureCheck | None = None
) -> tuple[AdapterRecord, IO[bytes]]:
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
    known = (MANIFEST_NAME, SIGNATURE_NAME)
    extra = sorted(name for name in by_name if name not in known and not _ARTIFACT_RE.match(name))
    if extra:
        raise BundleError(
            f"{label}: unexpected member(s) {extra}; a bundle holds {MANIFEST_NAME}, one "
            f"artifact/<sha256>.safetensors (only safetensors artifacts are accepted) and optionally "
            f"{SIGNATURE_NAME}"
        )
    manifest_member = by_name[MANIFEST_NAME]
    if manifest_member.size > MAX_MANIFEST_BYTES:
        raise BundleError(
            f"{label}: {MANIFEST_NAME} is {manifest_member.size} bytes, larger than any real one"
        )
    payload = _read_member(tar, manifest_member, label)
    if check_signature is not None:
        signature = None
        if SIGNATURE_NAME in by_name:
            if by_name[SIGNATURE_NAME].size > MAX_SIGNATURE_BYTES:
                raise BundleError(f"{label}: {SIGNATURE_NAME} is larger than any real signature; refused")
            signature = _read_member(tar, by_name[SIGNATURE_NAME], label)
        check_signature(payload, signature)
    record = _parse_manifest(payload, label)
    expected = artifact_member(record.artifact_sha256)
    artifacts = [name for name in by_name if name not in known]
    if artifacts != [expected]:
        raise BundleError(f"{label}: expected exactly the artifact member {expected!r}, found {artifacts}")
    if by_name[expected].size != record.artifact_size:
        raise BundleError(
            f"{label}: artifact has {by_name[expected].size} bytes, the record says {record.artifact_size}"
        )
    cap = max_artifact_bytes()
    if record.artifact_size > cap:
        raise BundleError(
            f"{label}: artifact is {record.artifact_size} bytes, more than the {cap} an import accepts "
            f"(raise ${MAX_ARTIFACT_ENV} for larger adapters); nothing extracted"
        )
    stream = tar.extractfile(by_name[expected])
    if stream is None:
        raise BundleError(f"{label}: cannot read {expected}")
    return record, stream


def max_artifact_bytes() -> int:
    """The import size cap: ``$COSMOS_ROS_MAX_ADAPTER_BYTES`` if set, else 8 GiB."""
    configured = os.environ.get(MAX_ARTIFACT_ENV)
    if not configured:
        return DEFAULT_MAX_ARTIFACT_BYTES
    try:
        value = int(configured)
    except ValueError:
        value = 0
    if value < 1:
        raise BundleError(
            f"${MAX_ARTIFACT_ENV}={configured!r} is not accepted; give a byte count, e.g. 8589934592"
        )
    return value


def check_bundle(
    path: str | os.PathLike[str],
    scratch: str | os.PathLike[str] | None = None,
    check_signature: SignatureCheck | None = None,
) -> AdapterRecord:
    """Read a whole bundle without a registry: structure, manifest, artifact hash and header.

    Why: ``adapters import`` runs this before it opens (and so creates) the registry, so a
    truncated, foreign or tampered bundle leaves no empty registry behind. The artifact goes
    through the same safetensors check (:func:`inspect_safetensors`) the store applies when it
    copies it in, on a private temporary copy: in ``scratch`` (the registry's own folder, where it
    exists) as ``.import-*.part``, which ``gc`` removes if a killed import leaves it behind.
    """
    label = str(path)
    with _scratch_file(scratch) as copy:
        digest = hashlib.sha256()
        with open_bundle(path, check_signature) as (record, stream), open(copy, "wb") as out:
            free = shutil.disk_usage(copy.parent).free
            if record.artifact_size > free:
                raise BundleError(
                    f"{label}: artifact is {record.artifact_size} bytes, only {free} free in {copy.parent}; "
                    "nothing imported"
                )
            written = 0
            while chunk := stream.read(_CHUNK):
                written += len(chunk)
                if written > record.artifact_size:  # never more than declared (and capped) above
                    raise BundleError(
                        f"{label}: artifact is longer than its declared {record.artifact_size} bytes"
                    )
                digest.update(chunk)
                out.write(chunk)
                fault_point("import_check_copy")
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


SCRATCH_GLOB = ".import-*.part"


def remove_stale_scratch(root: str | os.PathLike[str], min_age_s: float = 3600.0) -> list[Path]:
    """Remove import copies a killed ``adapters import`` left in ``root`` (those older than ``min_age_s``)."""
    import time

    removed = []
    cutoff = time.time() - min_age_s
    for path in Path(root).glob(SCRATCH_GLOB):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime <= cutoff:
                path.unlink()
                removed.append(path)
    return removed


@contextlib.contextmanager
def _scratch_file(scratch: str | os.PathLike[str] | None) -> Iterator[Path]:
    """A temporary file in ``scratch`` (named so ``gc`` finds it), else in a private temp folder."""
    if scratch is None:
        with tempfile.TemporaryDirectory(prefix="cosmos_ros_bundle_") as tmp:
            yield Path(tmp) / "artifact.safetensors"
        return
    fd, name = tempfile.mkstemp(prefix=".import-", suffix=".part", dir=scratch)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, label: str) -> bytes:
    stream = tar.extractfile(member)
    if stream is None:
        raise BundleError(f"{label}: cannot read {member.name}")
    return stream.read()


def _parse_manifest(payload: bytes, label: str) -> AdapterRecord:
    try:
        manifest = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{label}: {MANIFEST_NAME} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != BUNDLE_SCHEMA:
        found = manifest.get("schema") if isinstance(manifest, dict) else None
        raise BundleError(f"{label}: bundle schema {found!r} is not {BUNDLE_SCHEMA!r}")
    where = f"{label}:{MANIFEST_NAME}"
    try:
        record = AdapterRecord.from_dict(manifest.get("record") or {}, source=where)
    except ValueError as exc:
        raise BundleError(str(exc)) from exc
    try:
        check_record(record, f"{where} record")
    except InvalidRecordError as exc:
        raise BundleError(str(exc)) from exc
    return record
