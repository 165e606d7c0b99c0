"""``cosmos-ros adapters policy``: show or set this registry's import policy (``policy.yaml``).

Kept apart from ``cli.py`` so the registry's command module stays one screenful per command.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from cosmos_ros.registry import policy_record, site_policy

DESCRIPTION = (
    "Show or set this registry's import policy, kept in <registry>/policy.yaml. With no option it "
    "prints the policy. Defaults (no policy.yaml): require_signatures false (unsigned bundles are "
    "imported as candidates), trusted_keys empty, keep_signed_approval false (every import lands as "
    "a candidate, even a signed one). Bundles are signed with 'adapters export --sign-key KEY.pem'."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags = parser.add_mutually_exclusive_group()
    flags.add_argument(
        "--require-signatures",
        dest="require_signatures",
        action="store_true",
        default=None,
        help="refuse unsigned bundles and bundles signed by a key not trusted here (default: off)",
    )
    flags.add_argument(
        "--no-require-signatures",
        dest="require_signatures",
        action="store_false",
        help="accept unsigned bundles (as candidates); a trusted key's signature that does not verify "
        "is still refused",
    )
    keep = parser.add_mutually_exclusive_group()
    keep.add_argument(
        "--keep-signed-approval",
        dest="keep_signed_approval",
        action="store_true",
        default=None,
        help="a bundle its exporter approved, signed by a trusted key and verified, lands approved "
        "(default: off; it lands as a candidate)",
    )
    keep.add_argument(
        "--no-keep-signed-approval",
        dest="keep_signed_approval",
        action="store_false",
        help="every import lands as a candidate (the default)",
    )
    parser.add_argument(
        "--trust-key",
        action="append",
        default=[],
        metavar="PUBLIC_KEY.pem",
        help="trust this elliptic-curve public key (PEM); it is copied into <registry>/trusted_keys/ "
        "(repeatable)",
    )
    parser.add_argument(
        "--untrust-key",
        action="append",
        default=[],
        metavar="FINGERPRINT_OR_PATH",
        help="stop trusting a key, named by its sha256:... fingerprint or its listed path (repeatable)",
    )


def run(args: argparse.Namespace, console: Any) -> int:
    root = args.registry_obj.root
    registry = args.registry_obj
    before = policy = site_policy.load_policy(root)
    changed = False
    for pem in args.trust_key:
        policy_with_key, fingerprint = site_policy.trust_key(root, pem)
        policy = replace(policy, trusted_keys=policy_with_key.trusted_keys)
        console.print(f"trusting {fingerprint} ({pem})", markup=False)
        changed = True
    for which in args.untrust_key:
        policy = site_policy.untrust_key(root, policy, which)
        changed = True
    for flag in ("require_signatures", "keep_signed_approval"):
        value = getattr(args, flag)
        if value is not None and value != getattr(policy, flag):
            policy = replace(policy, **{flag: value})
            changed = True
    if changed:
        site_policy.save_policy(root, policy)
        registry.record_policy({"changes": policy_record.changes(before, policy)}, by=args.by)
    elif registry.policy_problem() is not None:  # a hand edit, reviewed here: accepting it is audited
        registry.record_policy({"accepted_hand_edit": True}, by=args.by)
        console.print(f"accepted the hand edit of {site_policy.policy_path(root)} (audited)", markup=False)
    keys = site_policy.trusted_keys(root, policy)
    console.print(f"policy {site_policy.policy_path(root)}:", markup=False)
    console.print(f"  require_signatures: {str(policy.require_signatures).lower()}", markup=False)
    console.print(f"  keep_signed_approval: {str(policy.keep_signed_approval).lower()}", markup=False)
    console.print("  trusted_keys:" + ("" if keys else " none"), markup=False)
    for fingerprint, path in keys.items():
        console.print(f"    {fingerprint}  {path}", markup=False)
    return 0
