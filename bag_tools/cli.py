"""``cosmos-ros bags``: inspect / convert / validate / synth."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from cosmos_ros.cli import CliError

_D = "(default: %(default)s)"


def _positive_int(text: str) -> int:
    """argparse type for counts, sizes and --workers: an integer >= 1 written plainly (not ``01``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip():
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    """argparse type for rates: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _convert_defaults() -> dict[str, Any]:
    from cosmos_ros.bag_tools.convert import ConvertConfig

    return {f.name: getattr(ConvertConfig(), f.name) for f in fields(ConvertConfig)}


def register(subparsers: argparse._SubParsersAction) -> None:
    bags = subparsers.add_parser(
        "bags",
        help="rosbag demonstrations -> training datasets (inspect, convert, validate, synth)",
        description="Turn ROS 1 / ROS 2 (sqlite3, mcap) bags into Cosmos training datasets; no ROS needed.",
    )
    sub = bags.add_subparsers(dest="bags_command", metavar="COMMAND", required=True)

    p = sub.add_parser("inspect", help="topics, types, counts, rates, image sizes; suggests the camera")
    p.add_argument(
        "bags",
        nargs="+",
        metavar="BAG",
        help="ROS 1 .bag file, ROS 2 bag folder or single .mcap/.db3 file; a folder of bags inspects "
        "each bag inside",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table (default: table)")
    p.set_defaults(func=_inspect)

    d = _convert_defaults()
    S = argparse.SUPPRESS
    p = sub.add_parser(
        "convert",
        help="convert bags into a dataset folder (videos/, metas/, manifest.jsonl, dataset.yaml)",
        description=(
            "Convert bags into a dataset: one episode per bag (or split by gap / marker / window), "
            "camera frames resampled by nearest timestamp to --fps, cut into 4k+1-frame clips, "
            "fitted to the target size. Options may also come from --config YAML (keys = option "
            "names with underscores); flags given on the command line override the YAML."
        ),
    )
    p.add_argument(
        "bags", nargs="+", metavar="BAG", help="ROS 1 .bag files, ROS 2 bag folders, single .mcap/.db3 files"
    )
    p.add_argument("-o", "--output", required=True, help="dataset folder to create")
    p.add_argument("--config", help="YAML file of convert options (default: none)")
    p.add_argument(
        "--topic",
        dest="topics",
        action="append",
        default=S,
        help="camera topic; repeat for several cameras (one clip each, shared clip_group) "
        "(default: the busiest image topic of each bag)",
    )
    p.add_argument("--fps", type=float, default=S, help=f"output frame rate (default: {d['fps']})")
    p.add_argument(
        "--clip-frames", type=int, default=S, help=f"frames per clip, 4k+1 (default: {d['clip_frames']})"
    )
    p.add_argument(
        "--stride",
        type=int,
        default=S,
        help="output frames between clip starts (default: --clip-frames, i.e. back to back)",
    )
    p.add_argument(
        "--resolution",
        default=S,
        help=f"HEIGHTxWIDTH or preset 432x768 / 704x1280 (default: {d['height']}x{d['width']})",
    )
    p.add_argument("--fit", choices=("crop", "letterbox"), default=S, help=f"(default: {d['fit']})")
    p.add_argument(
        "--time-source",
        choices=("header", "receive"),
        default=S,
        help=f"header stamps or bag receive time (default: {d['time_source']}; a bag whose camera "
        "header stamps are 0 uses receive time, with a warning)",
    )
    p.add_argument(
        "--tolerance-ms",
        type=float,
        default=S,
        help="max distance from an output frame time to its nearest source frame; clips spanning "
        "a larger gap are skipped and reported (default: one output frame period, 1000/fps)",
    )
    p.add_argument(
        "--episode-mode",
        choices=("bag", "gap", "marker", "window"),
        default=S,
        help=f"how bags split into episodes (default: {d['episode_mode']})",
    )
    p.add_argument(
        "--episode-gap-s", type=float, default=S, help=f"gap mode: split gap (default: {d['episode_gap_s']})"
    )
    p.add_argument("--marker-topic", default=S, help="marker mode: any message starts a new episode")
    p.add_argument(
        "--episode-window-s",
        type=float,
        default=S,
        help=f"window mode: episode length in s (default: {d['episode_window_s']})",
    )
    p.add_argument("--prompt", default=S, help="prompt for every clip without a more specific one")
    p.add_argument("--prompt-map", default=S, help="YAML {bag: prompt} or CSV bag,prompt (default: none)")
    p.add_argument(
        "--prompt-topic", default=S, help="std_msgs/String topic holding the prompt (default: none)"
    )
    p.add_argument("--prompt-prefix", default=S, help="text put before every prompt (default: none)")
    p.add_argument(
        "--allow-empty-prompt", action="store_true", default=S, help="accept clips without a prompt"
    )
    p.add_argument(
        "--val-fraction", type=float, default=S, help=f"episodes for val (default: {d['val_fraction']})"
    )
    p.add_argument(
        "--test-fraction", type=float, default=S, help=f"episodes for test (default: {d['test_fraction']})"
    )
    p.add_argument("--seed", type=int, default=S, help=f"split seed (default: {d['seed']})")
    p.add_argument(
        "--workers", type=_positive_int, default=1, help="processes converting bags in parallel, >= 1 " + _D
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted conversion with the same options; bags whose conversion finished "
        "may be left out or deleted (their clips are kept), every other bag must be given again",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON summary on stdout (dataset, clips and frames per bag, skipped windows, "
        "notes, warnings, errors, seconds) instead of text; progress stays on stderr (default: text)",
    )
    p.set_defaults(func=_convert)

    p = sub.add_parser(
        "validate",
        help="check that a dataset's videos, prompts and manifest agree",
        description=(
            "Check a dataset folder. Problems (exit 1): videos that do not decode as stated, missing "
            "prompts, files and manifest that disagree, an interrupted conversion. Warnings (still OK, "
            "exit 0): bags whose conversion failed, as recorded in dataset.yaml; the clips present "
            "are sound, but the dataset lacks that bag's data."
        ),
    )
    p.add_argument("dataset", help="dataset folder")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON summary on stdout (ok, clips checked, problems, warnings) instead of "
        "text; the exit code is the same (default: text)",
    )
    p.set_defaults(func=_validate)

    p = sub.add_parser("synth", help="write a synthetic demonstration bag (robot arm scene or test pattern)")
    p.add_argument("output", help="bag path to create (folder for ROS 2, .bag file for ros1)")
    p.add_argument(
        "--format",
        choices=("mcap", "sqlite3", "ros1"),
        default=None,
        help="(default: ros1 for a name ending in .bag, else mcap)",
    )
    p.add_argument("--frames", type=_positive_int, default=96, help=_D)
    p.add_argument("--fps", type=_positive_float, default=30.0, help="camera rate " + _D)
    p.add_argument("--height", type=_positive_int, default=240, help=_D)
    p.add_argument("--width", type=_positive_int, default=320, help=_D)
    p.add_argument("--encoding", default="rgb8", help="raw encoding, or jpeg/png for CompressedImage " + _D)
    p.add_argument("--topic", default="/camera/image_raw", help=_D)
    p.add_argument("--second-view", action="store_true", help="add a second camera on TOPIC + '_side'")
    p.add_argument(
        "--prompt", default=None, help="prompt published on /task/prompt (default: a built-in one)"
    )
    p.add_argument("--test-pattern", action="store_true", help="frames encode their index (for tests)")
    p.add_argument(
        "--embodiment",
        default=None,
        help="draw an episode of this procedural-world robot (e.g. grey_arm, ceiling_arm); its prompt "
        "describes the episode (default: the classic arm scene)",
    )
    p.add_argument("--episode-seed", type=int, default=0, help="which episode of --embodiment " + _D)
    p.add_argument("--compress", action="store_true", help="zstd (ROS 2) / lz4 (ROS 1) compression")
    p.set_defaults(func=_synth)


def _inspect(args: argparse.Namespace) -> int:
    from cosmos_ros.bag_tools.inspect import expand_bag_args, format_table, inspect_bag
    from cosmos_ros.bag_tools.readers import BagError

    bags, notes = expand_bag_args(args.bags)
    infos, failed = [], []
    for bag in bags:
        try:
            infos.append(inspect_bag(bag))
        except BagError as exc:
            failed.append(str(exc))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({"bags": [i.to_dict() for i in infos], "errors": failed}, indent=2))
    elif infos:
        print("\n\n".join(format_table(i) for i in infos))
    for err in failed:
        print(f"cosmos-ros: error: {err}", file=sys.stderr)
    return 1 if failed else 0


def _parse_resolution(text: object, where: str = "--resolution") -> tuple[int, int]:
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise CliError(
            f"{where} must be HEIGHTxWIDTH like 432x768 (presets: 432x768, 704x1280), got {text!r}"
        ) from None
    return h, w


def build_convert_config(args: argparse.Namespace) -> Any:
    """ConvertConfig from defaults < --config YAML < command-line flags."""
    import yaml
    from cosmos_ros.bag_tools.convert import ConvertConfig, config_type_problems

    known = {f.name for f in fields(ConvertConfig)} | {"resolution"}
    values: dict[str, Any] = {}
    if args.config:
        path = Path(args.config)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CliError(f"cannot read --config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise CliError(f"--config {path}: expected a mapping of option -> value")
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CliError(
                f"--config {path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        if isinstance(data.get("topics"), str):
            data["topics"] = [data["topics"]]
        problems = config_type_problems(data)
        if "resolution" in data and not isinstance(data["resolution"], str):
            problems.append(
                f"resolution: {data['resolution']!r} is not accepted; "
                "expected a string HEIGHTxWIDTH like 432x768"
            )
        if problems:
            raise CliError(f"--config {path}: " + "; ".join(problems))
        if "resolution" in data:
            data["height"], data["width"] = _parse_resolution(
                data.pop("resolution"), f"--config {path}: resolution"
            )
        values.update(data)
    flags = {k: v for k, v in vars(args).items() if k in known}
    if "resolution" in flags:
        flags["height"], flags["width"] = _parse_resolution(flags.pop("resolution"))
    values.update(flags)
    return ConvertConfig(**values)


def _convert(args: argparse.Namespace) -> int:
    from cosmos_ros.bag_tools.convert import ConvertError, convert_bags

    from cosmos_ros.progress import TqdmProgress

    config = build_convert_config(args)
    try:
        config.check()  # before the progress bar, so a bad option is the only output
    except (ConvertError, ValueError) as exc:
        where = f" (options from --config {args.config} and the command line)" if args.config else ""
        raise CliError(f"{exc}{where}") from exc
    bar = TqdmProgress(unit="frame")
    try:
        report = convert_bags(
            args.bags,
            args.output,
            config,
            workers=args.workers,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=bar,
        )
    except (ConvertError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        bar.close()
    rate = report.frames_read / max(report.seconds, 1e-6)
    if args.json:
        print(json.dumps(_convert_summary(report, rate), indent=2, default=str))
    else:
        print(
            f"{len(report.clips)} clips from {len(report.bags)} bag(s) in {report.seconds:.1f} s "
            f"({rate:.0f} source frames/s) -> {report.output}"
        )
    for bag in report.bags:
        if not args.json:
            for skip in bag.skipped:
                print(
                    f"skipped: {bag.bag} {skip['topic']} episode {skip['episode']} window {skip['window']} "
                    f"({skip['start_ns']}..{skip['end_ns']} ns): {skip['reason']}"
                )
            for note in bag.notes:
                print(f"note: {bag.bag}: {note}")
        for warning in bag.warnings:
            print(f"warning: {bag.bag}: {warning}", file=sys.stderr)
    for bag in report.failed:
        print(f"cosmos-ros: error: {bag.error}", file=sys.stderr)
    return 1 if report.failed else 0


def _convert_summary(report: Any, rate: float) -> dict[str, Any]:
    """The figures of the text summary of ``bags convert``, as one JSON-ready mapping."""
    return {
        "ok": not report.failed,
        "dataset": str(report.output),
        "clips": len(report.clips),
        "bag_count": len(report.bags),
        "bags_failed": len(report.failed),
        "frames_read": report.frames_read,
        "seconds": report.seconds,
        "source_frames_per_s": rate,
        "bags": [
            {
                "bag": bag.bag,
                "ok": not bag.error,
                "clips": len(bag.clips),
                "frames_read": bag.frames_read,
                "seconds": bag.seconds,
                "skipped": [dict(skip) for skip in bag.skipped],
                "notes": list(bag.notes),
                "warnings": list(bag.warnings),
                "error": bag.error,
            }
            for bag in report.bags
        ],
    }


def _problem_record(text: str) -> dict[str, str]:
    """Split ``"where: message"`` (a clip id, file or dataset path first) into its parts."""
    where, sep, message = text.partition(": ")
    return (
        {"where": where, "message": message, "text": text}
        if sep
        else {"where": "", "message": text, "text": text}
    )


def _validate(args: argparse.Namespace) -> int:
    from cosmos_ros.bag_tools.validate import check_dataset

    from cosmos_ros.progress import ProgressEvent

    totals: list[int] = []

    def count(event: ProgressEvent) -> None:
        totals.append(event.total)

    result = check_dataset(args.dataset, progress=count)
    if args.json:
        summary = {
            "dataset": str(args.dataset),
            "ok": not result.problems,
            "clips_checked": totals[-1] if totals else 0,
            "problem_count": len(result.problems),
            "problems": [_problem_record(p) for p in result.problems],
            "warning_count": len(result.warnings),
            "warnings": list(result.warnings),
        }
        print(json.dumps(summary, indent=2))
        return 1 if result.problems else 0
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.problems:
        print(f"{args.dataset}: {len(result.problems)} problem(s)", file=sys.stderr)
        for problem in result.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    note = f" with {len(result.warnings)} warning(s) (above)" if result.warnings else ""
    print(f"{args.dataset}: OK{note}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from cosmos_ros.bag_tools.synthetic import DEFAULT_PROMPT, SynthSpec, synth_format, write_synthetic_bag

    topics = (args.topic, args.topic + "_side") if args.second_view else (args.topic,)
    spec = SynthSpec(
        frames=args.frames,
        fps=args.fps,
        height=args.height,
        width=args.width,
        encoding=args.encoding,
        topics=topics,
        prompt=args.prompt or DEFAULT_PROMPT,
        test_pattern=args.test_pattern,
        compress=args.compress,
        embodiment=args.embodiment,
        episode_seed=args.episode_seed,
    )
    try:
        if args.embodiment is not None:
            from cosmos_ros.bag_tools.world import embodiment

            embodiment(args.embodiment)  # unknown names: one line listing the known ones
        fmt = synth_format(args.output, args.format)
        path = write_synthetic_bag(args.output, spec, fmt)
    except (ValueError, FileExistsError) as exc:
        raise CliError(str(exc)) from exc
    print(
        f"wrote {fmt} bag {path} ({args.frames} frames of {args.height}x{args.width} (HxW) "
        f"on {', '.join(topics)})"
    )
    return 0
