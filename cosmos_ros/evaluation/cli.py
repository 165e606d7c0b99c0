"""``cosmos-ros eval``: evaluate adapters on held-out clips; ``eval report``; ``eval learning-curve``.

Handlers import the evaluation stack lazily so ``cosmos-ros --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from cosmos_ros.cli import DefaultsHelpFormatter

log = logging.getLogger(__name__)

_FORMATTER = DefaultsHelpFormatter
#: Exit status of ``cosmos-ros eval`` when an adapter failed its gate (1 is an error).
GATE_FAILED_EXIT = 3


def _add_generation_options(parser: argparse.ArgumentParser) -> None:
    gen = parser.add_argument_group("generation")
    gen.add_argument("--model", metavar="DIR", help="local Cosmos Predict 2.5 diffusers directory (required)")
    gen.add_argument(
        "--split", default="test", choices=("train", "val", "test"), help="dataset split to evaluate on"
    )
    gen.add_argument("--seeds", type=int, default=3, help="seeds per clip and model (0..N-1)")
    gen.add_argument("--preset", default="full", help="prediction preset (full, full-720p, preview)")
    gen.add_argument(
        "--num-frames", type=int, default=None, help="frames to predict (4k+1); default: the preset's"
    )
    gen.add_argument("--steps", type=int, default=None, help="denoising steps; default: the preset's")
    gen.add_argument("--height", type=int, default=None, help="prediction height; default: the preset's")
    gen.add_argument("--width", type=int, default=None, help="prediction width; default: the preset's")
    gen.add_argument("--conditioning-frames", type=int, default=1, help="real frames given to the model")
    gen.add_argument(
        "--fit", default="crop", choices=("crop", "letterbox"), help="how real frames are fitted"
    )
    gen.add_argument(
        "--max-clips", type=int, default=None, help="evaluate only the first N clips of the split"
    )
    gen.add_argument(
        "--device", default="auto", help="torch device: auto (cuda if available, else cpu), cuda, cuda:1, cpu"
    )
    gen.add_argument(
        "--dtype",
        default="auto",
        help="model dtype: auto (bfloat16 on a GPU, float32 on the CPU), bfloat16, float16, float32",
    )
    gen.add_argument(
        "--safety-checker",
        default="auto",
        choices=("auto", "required", "off"),
        help="content safety checker policy: auto (guardrail if installed), required, off (default: auto)",
    )
    geo = parser.add_argument_group("Sampson error")
    geo.add_argument("--sift-ratio", type=float, default=0.75, help="Lowe's ratio test threshold")
    geo.add_argument("--ransac-threshold", type=float, default=1.0, help="RANSAC inlier threshold in pixels")
    geo.add_argument("--frame-gap", type=int, default=1, help="frame distance of temporal Sampson pairs")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate adapters against held-out real clips (metrics.json + HTML report)",
        formatter_class=_FORMATTER,
        description=(
            "For every clip of a dataset split, condition on its first frame(s) and prompt, generate with "
            "the base model (always the reference row) and each adapter, once per seed, and compare with "
            "the real continuation: PSNR/SSIM, flicker and optical-flow warping error, temporal and "
            "cross-view Sampson error. Writes OUT/metrics.json, OUT/videos/ and OUT/report/index.html; "
            "attaches results to the registry records of the adapters; --gate promotes those that pass."
        ),
        epilog=(
            "Exit status: 0 when the run finished and every gated adapter passed (or no --gate was "
            f"given), {GATE_FAILED_EXIT} when a gate failed, 1 on an error. Sub-commands: 'eval report OUT' "
            "re-renders a report; 'eval learning-curve --help'."
        ),
    )
    parser.add_argument("--dataset", metavar="DIR", help="dataset folder (required)")
    parser.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="NAME[@VER]|DIR",
        help="adapter to compare with the base: a registry reference or an adapter folder; repeatable",
    )
    parser.add_argument(
        "--registry",
        metavar="DIR",
        default=None,
        help="registry folder (default: $COSMOS_ROS_REGISTRY or ~/.cache/cosmos_ros/registry)",
    )
    parser.add_argument(
        "-o", "--out", metavar="OUT", default=None, help="output folder (default: eval_runs/<time>)"
    )
    parser.add_argument(
        "--gate",
        action="append",
        default=[],
        metavar="METRIC:MARGIN[:ci]",
        help="promotion rule: adapter must beat the base on METRIC by MARGIN (its unit; ':ci' also needs "
        "the 95%% CI of the difference on the better side of 0); repeatable. Metrics: psnr, psnr_moving, "
        "ssim, frame_diff_mean, brightness_flicker, warp_error, temporal_sampson_px, cross_view_sampson_px",
    )
    parser.add_argument("--gate-file", metavar="YAML", default=None, help="gate rules from a YAML file")
    parser.add_argument(
        "--promote-to",
        default="candidate",
        choices=("candidate", "approved"),
        help="status given when the gate passes",
    )
    parser.add_argument("--no-report", action="store_true", help="write metrics.json only")
    parser.add_argument(
        "--no-registry", action="store_true", help="do not attach results to registry records"
    )
    parser.add_argument(
        "--by",
        default=None,
        help="who is acting, recorded in the registry's audit log (default: $COSMOS_ROS_USER, else the "
        "login name)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier evaluation in OUT (default: refuse a non-empty OUT)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON summary on stdout (files written, rows, the summary table incl. the still "
        "baseline, registry and gate results) instead of text; non-finite values as in metrics.json "
        '("Infinity", "NaN"); progress and errors stay on stderr, exit codes unchanged (default: text)',
    )
    _add_generation_options(parser)
    parser.set_defaults(func=_eval)

    sub = parser.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")
    report = sub.add_parser(
        "report", help="re-render OUT/report/index.html from OUT/metrics.json", formatter_class=_FORMATTER
    )
    report.add_argument("results", metavar="OUT", help="evaluation output folder holding metrics.json")
    report.set_defaults(func=_report)

    curve = sub.add_parser(
        "learning-curve",
        help="train adapters on nested subsets and plot metric vs. number of clips",
        formatter_class=_FORMATTER,
        description=(
            "Trains one adapter per fraction of the training split (nested subsets: every smaller subset "
            "is part of the larger ones), evaluates each on the held-out split against the base, and "
            "plots each metric against the number of training clips (OUT/report/index.html)."
        ),
    )
    curve.add_argument("--dataset", metavar="DIR", required=True, help="dataset folder")
    curve.add_argument("--config", metavar="YAML", required=True, help="training config (name or path)")
    curve.add_argument(
        "--fractions", default="0.1,0.25,0.5,1.0", help="comma-separated fractions of the training clips"
    )
    curve.add_argument(
        "--subset-seed", type=int, default=0, help="seed of the clip order the subsets are cut from"
    )
    curve.add_argument("-o", "--out", metavar="OUT", required=True, help="output folder")
    curve.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="training config override"
    )
    _add_generation_options(curve)
    curve.set_defaults(func=_learning_curve)


def _sampson(args: argparse.Namespace) -> Any:
    from cosmos_ros.evaluation.metrics import SampsonSettings

    return SampsonSettings(
        ratio=args.sift_ratio, ransac_threshold_px=args.ransac_threshold, frame_gap=args.frame_gap
    )


def _device_and_dtype(args: argparse.Namespace) -> tuple[str, str]:
    """Resolve ``auto``; a CUDA device on a machine without one is a clear error, before any work."""
    from cosmos_ros.cli import CliError
    from cosmos_ros.model.loading import resolve_device_and_dtype

    try:
        return resolve_device_and_dtype(args.device, args.dtype)
    except ValueError as exc:
        raise CliError(f"--{exc}") from exc


def _check_generation_options(args: argparse.Namespace) -> None:
    """Preset, frame count, steps and size checked against the model folder before it loads."""
    from cosmos_ros.cli import CliError
    from cosmos_ros.model.runtime import check_settings

    try:
        check_settings(
            args.model, args.preset, num_frames=args.num_frames, steps=args.steps, height=args.height,
            width=args.width, fit=args.fit,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from exc


def _config(args: argparse.Namespace, out: str, adapters: list[str], registry: str | None) -> Any:
    from cosmos_ros.evaluation.protocol import EvalConfig

    device, dtype = _device_and_dtype(args)
    return EvalConfig(
        dataset=args.dataset, model=args.model, out=out, adapters=adapters, registry=registry,
        split=args.split, seeds=args.seeds, preset=args.preset, num_frames=args.num_frames, steps=args.steps,
        height=args.height, width=args.width, conditioning_frames=args.conditioning_frames, fit=args.fit,
        max_clips=args.max_clips,
        device=device, dtype=dtype, safety_checker=args.safety_checker, sampson=_sampson(args),
    )  # fmt: skip


def _gate(args: argparse.Namespace) -> Any:
    from cosmos_ros.cli import CliError
    from cosmos_ros.evaluation.gate import GateConfig, load_gate, parse_rule

    try:
        if args.gate_file:
            gate = load_gate(args.gate_file)
            if args.gate:
                gate = GateConfig(gate.rules + [parse_rule(r) for r in args.gate], gate.promote_to)
            return gate
        if args.gate:
            return GateConfig([parse_rule(r) for r in args.gate], args.promote_to)
    except (ValueError, KeyError) as exc:
        raise CliError(str(exc).strip("'\"")) from exc
    return None


def _eval(args: argparse.Namespace) -> int:
    from cosmos_ros.cli import CliError

    if not args.dataset or not args.model:
        raise CliError("eval needs --dataset DIR and --model DIR (see 'cosmos-ros eval --help')")
    gate = _gate(args)
    if gate is not None and (args.no_registry or all(_is_path(a) for a in args.adapter)):
        # Checked before the model loads: the gate only acts on registry records, found after the whole run.
        raise CliError(
            "--gate/--gate-file promote registry records: give at least one --adapter as a registry "
            "reference (NAME[@VER]) and leave out --no-registry; adapter folders have no record to promote"
        )
    from cosmos_ros.evaluation.protocol import default_out_dir, run_evaluation
    from cosmos_ros.evaluation.report import write_report
    from cosmos_ros.progress import TqdmProgress
    from cosmos_ros.registry import default_registry_path

    registry = args.registry or (str(default_registry_path()) if any(
        not _is_path(a) for a in args.adapter) else None)  # fmt: skip
    out = args.out or default_out_dir()
    _check_generation_options(args)
    _prepare_out(Path(out), args.overwrite)
    config = _config(args, out, args.adapter, registry)
    bar = TqdmProgress(unit="video")
    try:
        results = run_evaluation(config, progress=bar)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:
        from cosmos_ros.registry import RegistryError

        if isinstance(exc, RegistryError):
            raise CliError(str(exc)) from exc
        raise
    finally:
        bar.close()
    report = None if args.no_report else write_report(out, results)
    if not args.json:
        print(f"metrics: {out}/metrics.json")
        if report is not None:
            print(f"report:  {report}")
        _print_summary(results)
    published: dict[str, dict[str, Any]] = {}
    if registry and not args.no_registry:
        from cosmos_ros.evaluation.gate import publish_results
        from cosmos_ros.registry import InvalidNameError, RegistryError

        try:
            published = publish_results(results, registry, gate, by=args.by)
        except (RegistryError, InvalidNameError) as exc:
            raise CliError(
                f"results are in {out}/metrics.json but were not published to registry {registry}: {exc}"
            ) from exc
        for ref, info in {} if args.json else published.items():  # --json: in the document instead
            verdict = "" if info["passed"] is None else (" gate PASSED" if info["passed"] else " gate FAILED")
            print(f"registry: {ref}: results attached;{verdict} status {info['status']}")
            for check in info["checks"]:
                print(f"    {'ok  ' if check['passed'] else 'FAIL'} {check['metric']}: {check['reason']}")
    failed = any(info["passed"] is False for info in published.values())
    if args.json:
        from cosmos_ros.evaluation.eval_json import eval_summary

        document = eval_summary(results, out=out, report=report, registry=registry, published=published,
                                gate=gate, publishing=bool(registry and not args.no_registry))  # fmt: skip
        print(json.dumps(document, indent=2, allow_nan=False))
    return GATE_FAILED_EXIT if failed else 0


#: What an evaluation writes into OUT; --overwrite removes only these.
_EVAL_OUTPUTS = ("metrics.json", "videos", "report")


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse to mix two runs in one folder: old videos would sit beside new metrics."""
    import shutil

    from cosmos_ros.cli import CliError

    if out.exists() and not out.is_dir():
        raise CliError(f"-o {out} is a file; give a folder for the evaluation's outputs")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise CliError(f"-o {out} is not empty; give a new folder, or --overwrite to replace an earlier run")
    strangers = sorted(p.name for p in out.iterdir() if p.name not in _EVAL_OUTPUTS)
    if strangers:
        raise CliError(
            f"--overwrite refuses to clear {out}: it holds {', '.join(strangers)}, which an evaluation "
            f"does not write (only {', '.join(_EVAL_OUTPUTS)})"
        )
    for name in _EVAL_OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _is_path(ref: str) -> bool:
    return Path(ref).expanduser().exists()


def _summary_number(value: Any, signed: bool = False) -> str:
    """A summary cell: ``-`` for a value that is missing or NaN (unmeasured)."""
    import math

    if not isinstance(value, float | int) or math.isnan(value):
        return "-"
    return f"{value:+.3g}" if signed else f"{value:.4g}"


def summary_table(results: Any) -> list[str]:
    """The summary as aligned text: one line per metric, one column per row (real, base, still,
    adapters), each cell the mean over clips and, for rows compared with the base, ``(+d)`` = row - base."""
    from cosmos_ros.evaluation.results import REAL_ROW

    summary = results.summary
    order = [r for r in (REAL_ROW, *results.row_names()) if any(r in per_row for per_row in summary.values())]
    table = [["metric", *order]]
    for metric, per_row in summary.items():
        line = [metric]
        for row in order:
            entry = per_row.get(row)
            cell = _summary_number(entry["mean"]) if entry else ""
            if entry and "delta" in entry:
                cell += f" ({_summary_number(entry['delta'].get('mean'), signed=True)})"
            line.append(cell)
        table.append(line)
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in table
    ]


def _print_summary(results: Any) -> None:
    print(
        "summary (mean over clips; (+d) = row - base, paired by clip; 'still' repeats the last real frame):"
    )
    for line in summary_table(results):
        print(line)


def _report(args: argparse.Namespace) -> int:
    from cosmos_ros.cli import CliError
    from cosmos_ros.evaluation.report import write_report
    from cosmos_ros.evaluation.results import ResultsFormatError

    try:
        print(write_report(args.results))
    except (FileNotFoundError, ResultsFormatError) as exc:
        raise CliError(str(exc)) from exc
    return 0


def _learning_curve(args: argparse.Namespace) -> int:
    from cosmos_ros.cli import CliError

    try:
        from cosmos_ros.evaluation.learning_curve import run_learning_curve
    except ImportError as exc:
        raise CliError(f"the learning curve is not available in this build: {exc}") from exc
    try:
        fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    except ValueError as exc:
        raise CliError(f"--fractions must be comma-separated numbers, got {args.fractions!r}") from exc
    _check_generation_options(args)
    config = _config(args, args.out, [], None)
    try:
        path = run_learning_curve(
            config, args.config, fractions, overrides=args.set, subset_seed=args.subset_seed
        )
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from exc
    print(json.dumps({"report": str(path)}))
    return 0
