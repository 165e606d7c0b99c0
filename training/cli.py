"""``cosmos-ros train``: train a LoRA/DoRA adapter from a YAML config plus ``--set`` overrides."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    from .config import config_reference

    parser = subparsers.add_parser(
        "train",
        help="train a LoRA/DoRA adapter on a dataset folder",
        description=(
            "Train a LoRA or DoRA adapter on the frozen Cosmos Predict 2.5 base. Clips are encoded once "
            "(VAE latents + text embeddings, cached on disk), then only the transformer trains. Runs "
            "data-parallel unchanged under 'torchrun' or 'accelerate launch'. Resumes from the latest "
            "checkpoint in output_dir by default."
        ),
        epilog="Config fields (set in the YAML or with --set key=value):\n" + config_reference(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        default="lora_recipe",
        help="YAML config path, or a shipped config name: lora_recipe, dora_recipe, tiny_cpu "
        "(default: lora_recipe)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field (value read as YAML); repeatable, applied in order",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown)")
    parser.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    from cosmos_ros.cli import CliError

    from .config import load_config

    try:
        cfg = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from exc

    import os

    from cosmos_ros.progress import TqdmProgress

    from .loop import train

    main_process = int(os.environ.get("RANK", "0")) == 0
    progress = TqdmProgress(unit="step") if main_process and not args.no_progress else None
    try:
        result = train(cfg, progress=progress)
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        if progress is not None:
            progress.close()
    if main_process and result.adapter_dir is not None:
        m = result.metrics
        print(
            f"adapter written to {result.adapter_dir} "
            f"({result.steps_done} steps, final loss {m['final_loss']:.4g})"
        )
    return 0
