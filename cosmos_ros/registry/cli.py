"""``cosmos-ros adapters``: register, list, show, diff, govern, move and check registered adapters."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cosmos_ros.cli import CliError
from cosmos_ros.registry import policy_cli
from cosmos_ros.registry.cli_layout import (
    _cell,
    _Column,
    _console,
    _list_table,
    _log_details,
    _narrow_rows,
    _natural_width,
    _print_json,
    _show_narrow,
    _show_text,
    _status_style,
    _table,
)
from cosmos_ros.registry.cli_maintenance import _check_import, _export, _gc, _import, _policy, _verify
from cosmos_ros.registry.display import cell as plain_cell
from cosmos_ros.registry.display import clean
from cosmos_ros.registry.provenance import describe as describe_provenance

_REGISTRY_HELP = (
    "registry directory (default: $COSMOS_ROS_REGISTRY if set, else ~/.cache/cosmos_ros/registry)"
)
_BY_HELP = "who is acting, recorded in the audit log (default: $COSMOS_ROS_USER, else the login name)"
_REF_HELP = "NAME, NAME@VERSION, NAME@latest or NAME@<status> (plain NAME: newest approved, else newest)"
_STATUSES = ("draft", "candidate", "approved", "deprecated", "revoked")


def register(subparsers: argparse._SubParsersAction) -> None:
    adapters = subparsers.add_parser(
        "adapters",
        help="adapter registry: versions, lineage, approval, export/import, integrity",
        description=(
            "The adapter registry: every registered adapter version is immutable (weights stored by "
            "sha256), moves draft -> candidate -> approved -> deprecated | revoked, and every change "
            "is kept in an append-only audit log."
        ),
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", metavar="DIR", help=_REGISTRY_HELP)
    sub = adapters.add_subparsers(dest="adapters_command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str, handler: Callable[[argparse.Namespace], int], **kw: Any) -> Any:
        parser = sub.add_parser(
            name, help=help_text, description=kw.pop("description", help_text), parents=[common]
        )
        parser.set_defaults(func=_handle(handler, precheck=kw.pop("precheck", None)))
        return parser

    p = add(
        "register",
        "copy an adapter folder (or .safetensors file) into the registry as the next version of NAME",
        _register,
        description=(
            "Register the weights of an adapter folder (pytorch_lora_weights.safetensors + "
            "adapter_metadata.json) or of a single .safetensors file as the next version of NAME. "
            "Type, rank, targets, base fingerprint, dataset, training config, code version and metrics "
            "come from adapter_metadata.json where present; the flags below supply or override them."
        ),
        precheck=_check_register,
    )
    p.add_argument("source", metavar="SOURCE", help="adapter folder or .safetensors file")
    p.add_argument("name", metavar="NAME", help="embodiment/task name, e.g. ur5e.pick-place (no '/' or '..')")
    p.add_argument("--by", help=_BY_HELP)
    # The old spelling, kept so existing scripts work; hidden from --help, warns when used.
    p.add_argument("--created-by", dest="by", action=_DeprecatedAlias, new="--by", help=argparse.SUPPRESS)
    p.add_argument(
        "--parent", metavar="REF", help="the registered adapter this one was fine-tuned from (default: none)"
    )
    p.add_argument("--tag", dest="tags", action="append", default=[], help="tag, repeatable (default: none)")
    p.add_argument(
        "--status", choices=("draft", "candidate"), default="draft", help="initial status (default: draft)"
    )
    p.add_argument("--note", help="free-text note (default: none)")
    p.add_argument(
        "--type", dest="adapter_type", choices=("lora", "dora"), help="adapter type (default: metadata)"
    )
    p.add_argument("--rank", type=int, help="adapter rank (default: metadata, else read from the weights)")
    p.add_argument("--alpha", type=float, help="LoRA alpha (default: metadata)")
    p.add_argument("--targets", help="comma-separated target modules (default: metadata, else the weights)")
    base = p.add_mutually_exclusive_group()
    base.add_argument(
        "--base-model",
        metavar="MODEL_DIR",
        help="the base model directory the adapter was trained on; its fingerprint is recorded "
        "(default: metadata)",
    )
    base.add_argument(
        "--base-fingerprint",
        metavar="FINGERPRINT",
        help="fingerprint of the base model, sha256:... (default: metadata)",
    )
    p.add_argument("--dataset-manifest-sha256", help="sha256 of the dataset manifest (default: metadata)")
    p.add_argument("--dataset-path", help="where the dataset lies (default: metadata)")
    p.add_argument(
        "--training-config", metavar="FILE", help="training config, JSON or YAML (default: metadata)"
    )
    p.add_argument("--code-version", help="code version that trained it (default: metadata)")
    p.add_argument("--metrics", metavar="FILE", help="training metrics, JSON (default: metadata)")
    p.add_argument("--json", action="store_true", help="print the record as JSON (default: a summary)")

    p = add("list", "a table of registered versions (filter by name, status, base model)", _list)
    p.add_argument("--name", help="only this name (default: all)")
    p.add_argument("--status", choices=_STATUSES, help="only this status (default: all)")
    p.add_argument("--base", metavar="FINGERPRINT", help="only adapters for this base model (default: all)")
    p.add_argument(
        "--json", action="store_true", help="print JSON records instead of a table (default: table)"
    )

    p = add("show", "everything recorded about one version", _show)
    p.add_argument("ref", metavar="REF", help=_REF_HELP)
    p.add_argument("--json", action="store_true", help="print the record as JSON (default: readable)")

    p = add("diff", "differences in fields, training config and metrics between two versions", _diff)
    p.add_argument("ref_a", metavar="REF_A", help=_REF_HELP)
    p.add_argument("ref_b", metavar="REF_B", help=_REF_HELP)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table (default: table)")

    for name, status, text in (
        ("promote", "candidate", "draft -> candidate (ready for evaluation)"),
        ("approve", "approved", "candidate -> approved; needs a passing gated evaluation or --force-reason"),
        ("deprecate", "deprecated", "approved -> deprecated (superseded; pinned nodes still load it)"),
        ("revoke", "revoked", "-> revoked (final; nodes never load it again)"),
    ):
        p = add(name, text, _set_status)
        p.set_defaults(new_status=status)
        p.add_argument("ref", metavar="REF", help=_REF_HELP)
        p.add_argument("--note", required=True, help="why (required)")
        p.add_argument("--by", help=_BY_HELP)
        if name == "approve":
            p.add_argument(
                "--force-reason",
                help="approve without (passing) evaluation results; the reason is audited "
                "(default: not forced)",
            )

    p = add(
        "attach-eval",
        "attach evaluation results (the JSON object 'cosmos-ros eval' attaches) to a version",
        _attach,
    )
    p.add_argument("ref", metavar="REF", help=_REF_HELP)
    p.add_argument(
        "results",
        metavar="RESULTS_JSON",
        help="JSON file with the results, in the schema 'cosmos-ros eval' writes (metrics, dataset and base "
        "fingerprints, and for a gated run 'passed' and 'gate'); only '\"passed\": true' opens approval",
    )
    p.add_argument("--by", help=_BY_HELP)

    p = add("export", "write one version (record + weights) into a bundle archive", _export)
    p.add_argument("ref", metavar="REF", help=_REF_HELP)
    p.add_argument("-o", "--output", required=True, help="bundle file to write (.tar)")
    p.add_argument(
        "--sign-key",
        metavar="PRIVATE_KEY.pem",
        help="sign the bundle's manifest with this elliptic-curve private key (OpenSSF model-signing, "
        "offline); the signature travels inside the bundle as bundle.sig (default: unsigned)",
    )

    p = add(
        "import",
        "add the version held by a bundle archive as a candidate (the exporter's approvals are provenance)",
        _import,
        precheck=_check_import,
    )
    p.add_argument("bundle", metavar="BUNDLE", help="bundle file written by 'export'")
    p.add_argument("--by", help=_BY_HELP)

    p = add(
        "policy",
        "show or set the import policy: required signatures, trusted keys, signed approvals",
        _policy,
        description=policy_cli.DESCRIPTION,
    )
    policy_cli.add_arguments(p)
    p.add_argument("--by", help=_BY_HELP)

    p = add(
        "verify",
        "re-hash every artifact and database row; report damage, edits, orphans, leftovers (exit 1)",
        _verify,
    )
    p.add_argument("--json", action="store_true", help="print problems as JSON (default: table)")

    p = add("gc", "remove orphan blobs and leftover temporary files", _gc)
    p.add_argument(
        "--min-age",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="spare files younger than this; they may belong to a registration in progress "
        "(default: %(default)s)",
    )

    p = add("log", "the audit log, oldest first", _log)
    p.add_argument(
        "ref", metavar="NAME_OR_REF", nargs="?", help="only entries of this name or version (default: all)"
    )
    p.add_argument("--limit", type=int, help="only the last N entries (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table (default: table)")


# ---- plumbing -------------------------------------------------------------------------------------
class _DeprecatedAlias(argparse.Action):
    """Store like the option it stands for, and say on stderr which spelling to use instead."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kw: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kw)

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        print(f"cosmos-ros: warning: {option} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _handle(
    handler: Callable[[argparse.Namespace], int],
    precheck: Callable[[argparse.Namespace], None] | None = None,
) -> Callable[[argparse.Namespace], int]:
    """Open the registry and turn the registry's deliberate errors into clean CLI errors.

    ``precheck`` runs before the registry is opened, because opening creates it: a command that
    is going to fail on its input must not leave an empty registry behind. A closed stdout
    (``| head``) is handled by ``cosmos_ros.cli.main`` for every command.
    """

    @functools.wraps(handler)
    def wrapped(args: argparse.Namespace) -> int:
        from cosmos_ros.registry import InvalidNameError, RegistryError, open_registry

        try:
            if precheck is not None:
                precheck(args)
            with open_registry(args.registry) as registry:
                args.registry_obj = registry
                return handler(args)
        except (RegistryError, InvalidNameError, FileNotFoundError) as exc:
            raise CliError(str(exc)) from exc
        except ValueError as exc:  # adapter_metadata.json problems name their file
            raise CliError(str(exc)) from exc
        except BrokenPipeError:  # a closed stdout: cosmos_ros.cli.main handles it for every command
            raise
        except OSError as exc:  # a full disk, a read-only folder: name the file and the reason
            where = exc.filename or getattr(args, "registry", None) or "the registry"
            raise CliError(f"{where}: {exc.strerror or exc}") from exc
        except sqlite3.DatabaseError as exc:  # damage found after opening (a truncated page)
            from cosmos_ros.registry.dbfile import describe
            from cosmos_ros.registry.sqlite_store import DB_NAME
            from cosmos_ros.registry.store import default_registry_path

            root = Path(args.registry).expanduser() if args.registry else default_registry_path()
            raise CliError(str(describe(exc, root / DB_NAME))) from exc

    return wrapped


def _load_mapping(path: str, what: str) -> dict[str, Any]:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {what} file {file}: {exc}") from exc
    try:
        if file.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise CliError(
            f"{file}: not valid {'YAML' if file.suffix in ('.yaml', '.yml') else 'JSON'} ({exc})"
        ) from exc
    if not isinstance(data, dict):
        raise CliError(f"{file}: {what} must be a mapping (JSON object), got {type(data).__name__}")
    return data


# ---- handlers -------------------------------------------------------------------------------------
def _register(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {
        "adapter_type": args.adapter_type,
        "rank": args.rank,
        "alpha": args.alpha,
        "target_modules": [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else None,
        "base_fingerprint": args.base_fingerprint,  # --base-model was resolved by _check_register
        "dataset_manifest_sha256": args.dataset_manifest_sha256,
        "dataset_path": args.dataset_path,
        "code_version": args.code_version,
        "training_config": _load_mapping(args.training_config, "training config")
        if args.training_config
        else None,
        "metrics": _load_mapping(args.metrics, "metrics") if args.metrics else None,
    }
    with _library_base_warning_dropped():  # _warn_no_base says it below, with where to find one
        record = args.registry_obj.register(
            args.source,
            args.name,
            created_by=args.by,
            parent=args.parent,
            tags=args.tags,
            status=args.status,
            note=args.note,
            overrides={k: v for k, v in overrides.items() if v is not None},
        )
    if args.json:
        _print_json(record.to_dict())
    else:
        _console().print(
            f"registered [bold]{record.adapter_id}[/bold] ({record.status}), "
            f"artifact sha256 {record.artifact_sha256}"
        )
    if record.base_fingerprint is None:
        _warn_no_base(record.adapter_id, Path(args.source))
    return 0


@contextlib.contextmanager
def _library_base_warning_dropped() -> Iterator[None]:
    """Drop the registry's own no-base-fingerprint warning while the block runs.

    Why: the registry logs it for library callers; the CLI says the same on stderr with a fix
    for the command line (``--base-model``, where the fingerprint is), and it must appear once.
    """
    from cosmos_ros.registry import store

    def keep(record: logging.LogRecord) -> bool:
        return getattr(record, "cosmos_ros_notice", None) != store.NO_BASE_NOTICE

    store.LOG.addFilter(keep)
    try:
        yield
    finally:
        store.LOG.removeFilter(keep)


def _base_fingerprint(model_dir: str) -> str:
    from cosmos_ros.model.fingerprint import model_fingerprint

    try:
        return model_fingerprint(model_dir)
    except (OSError, ValueError) as exc:
        raise CliError(
            f"--base-model {model_dir}: cannot fingerprint it ({exc}); give the diffusers model directory "
            "the adapter was trained on (the folder with model_index.json)"
        ) from exc


def _warn_no_base(adapter_id: str, source: Path) -> None:
    """Say on stderr that a record without a base fingerprint cannot be checked, and how to fix it.

    Why: such a record registers fine but can never be approved, and where unapproved adapters are
    allowed it loads on any base model with only a log line; the moment to notice is now.
    """
    print(
        f"cosmos-ros: warning: {adapter_id} records no base-model fingerprint (nothing in {source} gives "
        "one), so it cannot be checked against a base model: it cannot be approved, and nodes that "
        "allow unapproved adapters load it on any base unchecked. Register it again with --base-model "
        f"MODEL_DIR or --base-fingerprint FINGERPRINT{_base_hint(source)}",
        file=sys.stderr,
    )


def _base_hint(source: Path) -> str:
    """Where the fingerprint can be found: metadata beside the file, or the run's final adapter."""
    from cosmos_ros.model.adapter_folder import METADATA_NAME, read_adapter_metadata

    if not source.is_file():
        return ""
    run_adapter = source.parent.parent.parent / "adapter"  # <run>/checkpoints/step_N/adapter.safetensors
    for folder in (source.parent, run_adapter if source.parent.parent.name == "checkpoints" else None):
        try:
            meta = read_adapter_metadata(folder) if folder is not None else None
        except (OSError, ValueError):
            meta = None
        if meta is None or not meta.base_fingerprint:
            continue
        if folder == source.parent:
            return f"; or register the folder {folder}, whose {METADATA_NAME} records it"
        return f" ({folder / METADATA_NAME} of the same run records {meta.base_fingerprint})"
    return ""


def _check_register(args: argparse.Namespace) -> None:
    """Name, weights and --base-model checked before the registry is opened (which would create it)."""
    from cosmos_ros.model.adapter_folder import weights_path
    from cosmos_ros.registry.names import validate_name
    from cosmos_ros.registry.validation import check_metadata_file

    validate_name(args.name)
    weights_path(args.source)
    check_metadata_file(Path(args.source))
    if args.base_model:
        args.base_fingerprint = _base_fingerprint(args.base_model)


def _list(args: argparse.Namespace) -> int:
    records = args.registry_obj.list(name=args.name, status=args.status, base=args.base)
    if args.json:
        _print_json([record.to_dict() for record in records])
        return 0
    console = _console()
    if not records:
        console.print(f"no adapters registered in {args.registry_obj.location} match")
        return 0
    console.print(_list_table(f"adapters in {args.registry_obj.location}", records, console))
    return 0


#: Fields of ``adapters show``, in the order shown.
_SHOW_FIELDS = (
    "status",
    "artifact_sha256",
    "artifact_size",
    "adapter_type",
    "rank",
    "alpha",
    "target_modules",
    "tensor_count",
    "base_fingerprint",
    "dataset_manifest_sha256",
    "dataset_path",
    "code_version",
    "parent",
    "tags",
    "created_by",
    "created_at",
    "note",
    "training_config",
    "metrics",
)


def _show(args: argparse.Namespace) -> int:
    """The record as tables where they fit the console, else the narrow layout of :func:`_show_narrow`."""
    record = args.registry_obj.get(args.ref)
    if args.json:
        _print_json(record.to_dict())
        return 0
    data = record.to_dict()
    fields = [(key, clean(_show_text(data[key]))) for key in _SHOW_FIELDS]
    origin = describe_provenance(record.provenance)
    if origin:
        fields.insert(1, ("provenance", clean(origin)))
    fields.append(("weights", clean(args.registry_obj.artifact_path(record))))
    table = _table(clean(record.adapter_id), ["field", "value"])
    for key, text in fields:
        table.add_row(key, _status_style(text) if key == "status" else plain_cell(text))
    history = _table("status history", ["at", "from", "to", "by", "note", "forced because"])
    for change in record.history:
        history.add_row(
            *(
                plain_cell(value or "-")
                for value in (
                    change.at,
                    change.from_status,
                    change.to_status,
                    change.by,
                    change.note,
                    change.force_reason,
                )
            )
        )
    tables = [table, history]
    if record.evaluations:
        evals = _table("evaluations", ["at", "by", "results"])
        for entry in record.evaluations:
            results = json.dumps(entry.results, sort_keys=True)
            evals.add_row(plain_cell(entry.at), plain_cell(entry.by), plain_cell(results))
        tables.append(evals)
    console = _console()
    if all(_natural_width(console, t) <= console.width for t in tables):
        for t in tables:
            console.print(t)
        return 0
    for part in _show_narrow(console, record, fields):
        console.print(part)
    return 0


def _diff(args: argparse.Namespace) -> int:
    registry = args.registry_obj
    a, b = registry.get(args.ref_a), registry.get(args.ref_b)
    changes = registry.diff(a.adapter_id, b.adapter_id)
    if args.json:
        _print_json([{"key": key, a.adapter_id: va, b.adapter_id: vb} for key, va, vb in changes])
        return 0
    if not changes:
        _console().print(f"{a.adapter_id} and {b.adapter_id} do not differ")
        return 0
    table = _table(f"{a.adapter_id} vs {b.adapter_id}", ["key", a.adapter_id, b.adapter_id])
    for key, va, vb in changes:
        table.add_row(plain_cell(key), plain_cell(_cell(va)), plain_cell(_cell(vb)))
    _console().print(table)
    return 0


def _set_status(args: argparse.Namespace) -> int:
    record = args.registry_obj.set_status(
        args.ref,
        args.new_status,
        by=args.by,
        note=args.note,
        force_reason=getattr(args, "force_reason", None),
    )
    forced = " (forced: audited)" if getattr(args, "force_reason", None) else ""
    _console().print(f"{record.adapter_id} is now {_status_style(record.status)}{forced}")
    return 0


def _attach(args: argparse.Namespace) -> int:
    results = _load_mapping(args.results, "evaluation results")
    record = args.registry_obj.attach_evaluation(args.ref, results, by=args.by)
    _console().print(
        f"attached evaluation results to {record.adapter_id} ({len(record.evaluations)} in total)"
    )
    return 0


def _log(args: argparse.Namespace) -> int:
    """The audit log as a table where it fits the console, else one line per entry plus its details."""
    entries = args.registry_obj.audit_log(args.ref, limit=args.limit)
    if args.json:
        _print_json([entry.__dict__ for entry in entries])
        return 0
    rows = []
    for entry in entries:
        at = entry.at[:19].replace("T", " ")
        cells = [clean(v) for v in (entry.seq, at, entry.actor, entry.action, entry.adapter_id or "-")]
        rows.append((cells, _log_details(entry)))
    table = _table("audit log", ["#", "at", "actor", "action", "adapter", "details"], no_wrap=1)
    for cells, details in rows:
        table.add_row(*(plain_cell(value) for value in cells), plain_cell(details))
    console = _console()
    if _natural_width(console, table) <= console.width:
        console.print(table)
        return 0
    # Why: six columns do not fit 80 and rich folded every one (``artifact_sha`` / ``256=…``,
    # ``status:candi`` / ``date``); the details, the only long column, go on a line of their own.
    columns = [
        _Column("#"),
        _Column("at"),
        _Column("actor", "ellipsis", 6),
        _Column("action"),
        _Column("adapter", "fold", 12),
    ]
    narrow_rows = [(cells, [details] if details else []) for cells, details in rows]
    console.print(_narrow_rows(console, "audit log", columns, narrow_rows))
    return 0
