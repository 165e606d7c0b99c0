"""``cosmos-ros demo``: the whole loop in one command (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole loop end to end: bags -> dataset -> adapter -> registry -> eval -> ROS 2",
        description=(
            "The end-to-end demo, in eight stages:\n"
            "  1 check the environment\n"
            "  2 pick the model: cosmos-mini, the small trained world model shipped with cosmos_ros\n"
            "    (or --model tiny: a random-weight model; or --model DIR: real weights)\n"
            "  3 record demonstration bags (ROS 2 mcap and ROS 1) of a robot cosmos-mini never saw\n"
            "    (a ceiling-mounted arm moving a block to a bowl)\n"
            "  4 convert them to a dataset and validate it\n"
            "  5 train a short LoRA run and register it\n"
            "  6 evaluate it against the base and approve it through the gate\n"
            "  7 start the capture and generation nodes, replay a held-out bag's camera into the\n"
            "    capture node and receive the prediction over ROS 2 (and as an mp4)\n"
            "  8 print where everything is\n"
            "Everything is written under --output (summary: demo_summary.json). A few minutes on 2 CPU\n"
            "cores with cosmos-mini: a toy world that proves the loop, not Cosmos quality."
        ),
        epilog="Examples: cosmos-ros demo --output demo_output\n"
        "          cosmos-ros demo --output demo_real --model ~/models/Cosmos-Predict2.5-2B --device cuda",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", default="demo_output", help="folder to create (default: %(default)s)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --output folder of an earlier demo (default: refuse a non-empty one)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="local Cosmos-Predict2.5-2B diffusers folder: run the loop on real weights at real sizes "
        "(432x768, 29-frame clips, 'preview' preset; a GPU is needed), or 'tiny' to build a random-weight "
        "model (plumbing only) (default: the shipped cosmos-mini)",
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N (default: auto = cuda if available, else cpu)"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16", "float16"),
        help="weights dtype (default: auto = bfloat16 on cuda, float32 on cpu)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller bags, fewer training steps and evaluation videos (for tests) (default: off)",
    )
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from cosmos_ros.cli import CliError
    from cosmos_ros.demo import StageFailed, prepare_output, run_demo

    try:
        prepare_output(args.output, args.overwrite)
    except FileExistsError as exc:
        raise CliError(str(exc)) from exc
    try:
        run_demo(args.output, model=args.model, device=args.device, dtype=args.dtype, quick=args.quick)
    except StageFailed as exc:
        raise CliError(f"{exc} (details: {args.output}/demo_summary.json)") from exc
    return 0
