"""The registry commands that move or check data as a whole: export, import, policy, verify, gc.

Split from ``cli.py`` (which builds the parser and holds the record commands); each handler
runs inside ``cli._handle``, which opens the registry and turns its errors into one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cosmos_ros.registry import policy_cli
from cosmos_ros.registry.cli_layout import _console, _print_json, _table
from cosmos_ros.registry.display import cell as plain_cell


def _check_import(args: argparse.Namespace) -> None:
    """Read the whole bundle before the registry is opened (which would create it).

    Its temporary copy goes into the registry's folder where that exists, so a killed import
    leaves nothing in the system's temp folder, and ``gc`` removes what it leaves.
    """
    from cosmos_ros.registry.bundle import check_bundle
    from cosmos_ros.registry.site_policy import SignatureGate
    from cosmos_ros.registry.store import default_registry_path

    root = Path(args.registry).expanduser() if args.registry else default_registry_path()
    gate = SignatureGate.for_registry(root, args.bundle)  # its policy.yaml, if the registry exists
    check_bundle(args.bundle, scratch=root if root.is_dir() else None, check_signature=gate)


def _export(args: argparse.Namespace) -> int:
    out = args.registry_obj.export_bundle(args.ref, args.output, sign_key=args.sign_key)
    record = args.registry_obj.get(args.ref)
    signed = " signed" if args.sign_key else ""
    _console().print(f"exported {record.adapter_id} to {out} ({out.stat().st_size} bytes{signed})")
    return 0


def _policy(args: argparse.Namespace) -> int:
    return policy_cli.run(args, _console())


def _import(args: argparse.Namespace) -> int:
    record = args.registry_obj.import_bundle(args.bundle, by=args.by)
    _console().print(
        f"imported {record.adapter_id} ({record.status}), artifact sha256 {record.artifact_sha256}"
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    from cosmos_ros.progress import TqdmProgress

    bar = TqdmProgress(unit="artifact", disable=args.json or None, file=sys.stderr)
    try:
        problems = args.registry_obj.verify(progress=bar)
    finally:
        bar.close()
    if args.json:
        _print_json([{"kind": p.kind, "subject": p.subject, "message": p.message} for p in problems])
    elif problems:
        table = _table(
            f"{len(problems)} problem(s) in {args.registry_obj.location}", ["kind", "subject", "message"]
        )
        for problem in problems:
            table.add_row(
                f"[red]{problem.kind}[/red]", plain_cell(problem.subject), plain_cell(problem.message)
            )
        _console().print(table)
    else:
        _console().print(
            f"[green]ok[/green]: every artifact and database row in {args.registry_obj.location} "
            "matches what was recorded"
        )
    return 1 if problems else 0


def _gc(args: argparse.Namespace) -> int:
    removed = args.registry_obj.gc(min_age_s=args.min_age)
    console = _console()
    for path in removed:
        console.print(f"removed {path}")
    console.print(f"{len(removed)} file(s) removed")
    return 0
