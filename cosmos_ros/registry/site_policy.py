"""This site's import policy: whether bundles must be signed, by whom, and what a signature earns.

Kept in ``<registry>/policy.yaml`` (no file: every default below)::

    require_signatures: false    # true: refuse unsigned bundles and bundles from untrusted keys
    trusted_keys: []             # PEM public-key paths, absolute or relative to the registry folder
    keep_signed_approval: false  # true: a verified bundle from a trusted key that its exporter
                                 # approved lands approved; otherwise every import is a candidate

Why a file beside the database and not a table: it is read before the registry is opened (an
import that will be refused must not create a registry) and it is meant to be reviewed like any
other site configuration. ``cosmos-ros adapters policy`` edits it; ``--trust-key`` copies the key
into ``<registry>/trusted_keys/`` so the policy does not depend on where the key was lying.

Whatever the policy, a bundle whose signature names a trusted key but does not verify is refused
(it was changed after signing); an unsigned bundle, or one signed by an unknown key, is imported
as unsigned where signatures are not required, and is never approved on arrival.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cosmos_ros.atomic import atomic_write_bytes, atomic_write_text
from cosmos_ros.registry import signing
from cosmos_ros.registry.records import RegistryError
from cosmos_ros.registry.signing import SignatureError

POLICY_NAME = "policy.yaml"
KEYS_DIR = "trusted_keys"
_FIELDS = ("require_signatures", "trusted_keys", "keep_signed_approval")


@dataclass(frozen=True)
class SitePolicy:
    """The policy; the defaults are those of a registry with no ``policy.yaml``."""

    require_signatures: bool = False
    trusted_keys: tuple[str, ...] = ()
    keep_signed_approval: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "require_signatures": self.require_signatures,
            "trusted_keys": list(self.trusted_keys),
            "keep_signed_approval": self.keep_signed_approval,
        }


def policy_path(root: str | os.PathLike[str]) -> Path:
    return Path(root).expanduser() / POLICY_NAME


def load_policy(root: str | os.PathLike[str]) -> SitePolicy:
    """The policy of the registry at ``root``; defaults where it has no ``policy.yaml``."""
    import yaml

    path = policy_path(root)
    if not path.exists():
        return SitePolicy()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        why = " ".join(str(exc).split())[:200]
        raise RegistryError(f"{path}: not a readable YAML policy ({why})") from exc
    if data is None:
        return SitePolicy()
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: must be a mapping of {', '.join(_FIELDS)}; found {type(data).__name__}")
    unknown = sorted(str(key) for key in data if key not in _FIELDS)
    if unknown:
        raise RegistryError(f"{path}: unknown field(s) {unknown}; accepted: {', '.join(_FIELDS)}")
    for flag in ("require_signatures", "keep_signed_approval"):
        if flag in data and not isinstance(data[flag], bool):
            raise RegistryError(f"{path}: field {flag} is {data[flag]!r}; accepted: true or false")
    keys = data.get("trusted_keys") or []
    if not isinstance(keys, list) or not all(isinstance(key, str) and key for key in keys):
        raise RegistryError(f"{path}: field trusted_keys is {keys!r}; accepted: a list of PEM file paths")
    return SitePolicy(
        require_signatures=bool(data.get("require_signatures", False)),
        trusted_keys=tuple(keys),
        keep_signed_approval=bool(data.get("keep_signed_approval", False)),
    )


def save_policy(root: str | os.PathLike[str], policy: SitePolicy) -> Path:
    import yaml

    header = "# cosmos_ros registry site policy; see 'cosmos-ros adapters policy --help'\n"
    return atomic_write_text(policy_path(root), header + yaml.safe_dump(policy.to_dict(), sort_keys=False))


def trusted_keys(root: str | os.PathLike[str], policy: SitePolicy) -> dict[str, Path]:
    """Fingerprint -> PEM path of every trusted key; a listed key that cannot be read is an error."""
    found: dict[str, Path] = {}
    for entry in policy.trusted_keys:
        path = _resolve(root, entry)
        try:
            key = signing.load_public_key(path)
        except SignatureError as exc:
            raise RegistryError(f"{policy_path(root)}: trusted_keys entry {entry!r}: {exc}") from exc
        found[signing.fingerprint_of(key)] = path
    return found


def trust_key(root: str | os.PathLike[str], pem: str | os.PathLike[str]) -> tuple[SitePolicy, str]:
    """Copy ``pem`` into ``<root>/trusted_keys/`` and list it; returns the policy and its fingerprint."""
    fingerprint = signing.fingerprint_of(signing.load_public_key(pem))
    relative = f"{KEYS_DIR}/{fingerprint.split(':', 1)[1]}.pem"
    target = Path(root).expanduser() / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, Path(pem).read_bytes())
    policy = load_policy(root)
    if relative not in policy.trusted_keys:
        policy = replace(policy, trusted_keys=(*policy.trusted_keys, relative))
    return policy, fingerprint


def untrust_key(root: str | os.PathLike[str], policy: SitePolicy, which: str) -> SitePolicy:
    """``policy`` without the key named by fingerprint or by its listed path.

    Entries whose file is gone or unreadable can still be removed by their listed path.
    """

    def fingerprint(entry: str) -> str | None:
        try:
            return signing.fingerprint_of(signing.load_public_key(_resolve(root, entry)))
        except SignatureError:
            return None

    kept = tuple(entry for entry in policy.trusted_keys if which not in (entry, fingerprint(entry)))
    if kept == policy.trusted_keys:
        raise RegistryError(
            f"{policy_path(root)}: no trusted key {which!r}; give a fingerprint (sha256:...) or a "
            "listed path ('cosmos-ros adapters policy' lists them)"
        )
    return replace(policy, trusted_keys=kept)


def _resolve(root: str | os.PathLike[str], entry: str) -> Path:
    path = Path(entry).expanduser()
    return path if path.is_absolute() else Path(root).expanduser() / path


@dataclass
class SignatureGate:
    """Checks a bundle's signature against the policy while the bundle is read (see ``open_bundle``).

    After the call, ``provenance`` is what the import records about the signature (``None``
    for an unsigned bundle), and ``keeps_approval`` whether the exporter's approval may stand.
    """

    policy: SitePolicy
    root: Path
    label: str
    provenance: dict[str, Any] | None = field(default=None, init=False)

    @classmethod
    def for_registry(cls, root: str | os.PathLike[str], label: str) -> SignatureGate:
        root = Path(root).expanduser()
        return cls(load_policy(root) if root.is_dir() else SitePolicy(), root, label)

    @property
    def keeps_approval(self) -> bool:
        return bool(self.policy.keep_signed_approval and self.provenance and self.provenance["verified"])

    def __call__(self, manifest: bytes, signature: bytes | None) -> None:
        required = self.policy.require_signatures
        where = f"{policy_path(self.root)} require_signatures: true"
        if signature is None:
            if required:
                raise SignatureError(
                    f"{self.label}: bundle is unsigned, and this registry requires signatures ({where}); "
                    "refused (export it with --sign-key)"
                )
            self.provenance = None
            return
        hint = signing.signature_hint(signature, self.label)
        keys = trusted_keys(self.root, self.policy)
        if hint not in keys:
            if required:
                raise SignatureError(
                    f"{self.label}: signed by key {hint}, which is not trusted here ({len(keys)} trusted "
                    f"key(s) in {policy_path(self.root)}); refused"
                )
            self.provenance = {"signer": hint, "verified": False, "why": "signer's key is not trusted here"}
            return
        signing.verify_manifest(manifest, signature, keys[hint], self.label)
        self.provenance = {"signer": hint, "verified": True, "key": str(keys[hint])}
