"""Bundle signatures with OpenSSF ``model-signing``, key-based and offline (never sigstore's network flow).

What is signed: the bundle's manifest, ``bundle.json``, byte for byte. model-signing hashes a
folder holding only that file (named ``bundle/bundle.json``) and signs the result with an
elliptic-curve private key (P-256, P-384 or P-521, PEM). The manifest pins the artifact's sha256
and size, and every import re-hashes the artifact against it, so changing the weights after
signing is refused by the hash check, and changing the manifest to match new weights is refused
by the signature. The signature (model-signing's sigstore bundle JSON) travels *inside* the
bundle archive as the member ``bundle.sig``.

A key is named by its fingerprint, ``sha256:<hex>``: the sha256 of its SubjectPublicKeyInfo PEM,
the same value model-signing records as the signature's key hint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cosmos_ros.registry.records import BundleError

SIGNATURE_NAME = "bundle.sig"
#: The largest signature member accepted (real ones are a few KiB).
MAX_SIGNATURE_BYTES = 1024 * 1024
_SIGNED_DIR = "bundle"
_SIGNED_FILE = "bundle.json"
_CURVES = ("secp256r1", "secp384r1", "secp521r1")


class SignatureError(BundleError):
    """A signature that is missing, unreadable, from an untrusted key or does not match."""


def fingerprint_of(public_key: Any) -> str:
    """``sha256:<hex>`` of the key's SubjectPublicKeyInfo PEM (model-signing's key hint)."""
    from cryptography.hazmat.primitives import serialization

    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(pem).hexdigest()


def load_public_key(path: str | os.PathLike[str]) -> Any:
    """An elliptic-curve public key from a PEM file; one-line errors naming the file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SignatureError(f"public key {path}: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SignatureError(
            f"public key {path} is not a PEM public key (give the '-----BEGIN PUBLIC KEY-----' file)"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _CURVES:
        raise SignatureError(
            f"public key {path} is not accepted; give an elliptic-curve key on {', '.join(_CURVES)}"
        )
    return key


def check_private_key(path: str | os.PathLike[str]) -> str:
    """Check a signing key before anything is written; return its public key's fingerprint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SignatureError(f"signing key {path}: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(
            f"signing key {path} is not an unencrypted PEM private key "
            "(give an elliptic-curve key, e.g. from 'openssl ecparam -name prime256v1 -genkey -noout')"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in _CURVES:
        raise SignatureError(
            f"signing key {path} is not accepted; give an elliptic-curve key on {', '.join(_CURVES)}"
        )
    return fingerprint_of(key.public_key())


@contextlib.contextmanager
def _signed_folder(manifest: bytes) -> Iterator[Path]:
    """The folder model-signing hashes: ``bundle/bundle.json`` holding exactly ``manifest``."""
    with tempfile.TemporaryDirectory(prefix="cosmos_ros_sign_") as tmp:
        folder = Path(tmp) / _SIGNED_DIR
        folder.mkdir()
        (folder / _SIGNED_FILE).write_bytes(manifest)
        yield folder


def sign_manifest(manifest: bytes, private_key: str | os.PathLike[str]) -> bytes:
    """model-signing's signature (sigstore bundle JSON) over ``manifest``, with a local EC key."""
    from model_signing import signing

    check_private_key(private_key)
    with _signed_folder(manifest) as folder:
        out = folder.parent / SIGNATURE_NAME
        signing.Config().use_elliptic_key_signer(private_key=Path(private_key)).sign(folder, out)
        return out.read_bytes()


def signature_hint(signature: bytes, label: str) -> str:
    """The signer's fingerprint as the signature states it (unauthenticated: used to pick a key)."""
    try:
        data = json.loads(signature.decode("utf-8"))
        hint = data["verificationMaterial"]["publicKey"]["hint"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SignatureError(
            f"{label}: {SIGNATURE_NAME} is not a model-signing key signature (no public key hint)"
        ) from exc
    if not isinstance(hint, str) or len(hint) != 64 or any(c not in "0123456789abcdef" for c in hint):
        raise SignatureError(f"{label}: {SIGNATURE_NAME} names key hint {hint!a}, not a sha256")
    return "sha256:" + hint


def verify_manifest(manifest: bytes, signature: bytes, public_key: Path, label: str) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is ``public_key``'s over ``manifest``."""
    from model_signing import verifying

    with _signed_folder(manifest) as folder:
        sig_path = folder.parent / SIGNATURE_NAME
        sig_path.write_bytes(signature)
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=public_key).verify(folder, sig_path)
        except Exception as exc:  # model-signing raises ValueError, cryptography InvalidSignature, ...
            why = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise SignatureError(
                f"{label}: signature does not match the bundle's {_SIGNED_FILE} (changed after signing, "
                f"or a damaged {SIGNATURE_NAME}): {why}; refused"
            ) from exc
