"""``cosmos-ros train``: train a LoRA/DoRA adapter from a YAML config plus ``--set`` overrides."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
from typing import Any

_DESCRIPTION = "\n\n".join(
    textwrap.fill(paragraph, 100)
    for paragraph in (
        "Train a LoRA or DoRA adapter on the frozen Cosmos Predict 2.5 base. Clips are encoded once (VAE "
        "latents + text embeddings, cached on disk), then only the transformer trains. Runs data-parallel "
        "unchanged under 'torchrun' or 'accelerate launch'.",
        "Resuming: by default a run continues from the latest checkpoint in output_dir, but only when that "
        "checkpoint was written with the same base model (fingerprint), dataset (manifest and training "
        "clips), adapter (type, rank, alpha, target_modules), seed, global batch, preprocessing, objective "
        "and optimizer settings; otherwise it stops and names each field that differs. max_steps, epochs, "
        "checkpoint/validation intervals, logging, paths and speed/memory flags may change.",
        "Ctrl-C finishes the current step, writes a checkpoint of it and prints the command that continues "
        "the run (a second Ctrl-C aborts without that checkpoint).",
        "Running a finished run again (its last checkpoint is at max_steps) trains nothing: the adapter "
        "folder and its metrics stay as they are; the adapter is only written (from the last checkpoint) "
        "when missing, and registered (config field registry) only when the registry does not hold it "
        "yet, as after a run stopped before registering. Raise max_steps to train further.",
        "Checkpoints record the sha256 of their files; a resume refuses a damaged one by name.",
    )
)


def register(subparsers: Any) -> None:
    from .config import config_reference

    parser = subparsers.add_parser(
        "train",
        help="train a LoRA/DoRA adapter on a dataset folder",
        description=_DESCRIPTION,
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
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON summary on stdout (output folder, adapter, steps, final/best losses, "
        "validation figures, registered version) instead of text; progress, warnings and errors stay "
        "on stderr, exit codes unchanged (default: text)",
    )
    parser.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    from cosmos_ros.cli import CliError

    from .config import load_config

    try:
        cfg = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from exc

    from cosmos_ros.progress import TqdmProgress

    from .loop import TrainingInterrupted, train

    main_process = int(os.environ.get("RANK", "0")) == 0
    progress = TqdmProgress(unit="step") if main_process and not args.no_progress else None
    interrupted: TrainingInterrupted | None = None
    try:
        result = train(cfg, progress=progress)
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from exc
    except TrainingInterrupted as exc:
        interrupted = exc
    finally:
        if progress is not None:
            progress.close()
    if interrupted is not None:
        if main_process and getattr(args, "json", False):
            summary = {"ok": False, "interrupted": True, "output_dir": str(cfg.output_dir),
                       "checkpoint_step": interrupted.step, "checkpoint": str(interrupted.checkpoint),
                       "resume_command": resume_command(args)}  # fmt: skip
            print(json.dumps(summary, indent=2))
        if main_process:
            print(
                f"cosmos-ros: training interrupted; checkpoint of step {interrupted.step}: "
                f"{interrupted.checkpoint}\nresume with:\n  {resume_command(args)}",
                file=sys.stderr,
            )
        return 128 + interrupted.signum  # 130 for Ctrl-C, 143 for SIGTERM
    if main_process and getattr(args, "json", False):
        print(json.dumps(train_summary(cfg, result), indent=2, default=str))
    elif main_process and result.already_complete:
        print(
            f"run already complete: {cfg.output_dir} holds its last checkpoint (step {result.steps_done} of "
            f"max_steps); adapter {result.adapter_dir} left as it was. Raise max_steps to train further, "
            "or set another output_dir for a new run"
        )
        if result.registered_now:
            print(
                f"registered it as {result.registered_as} in {cfg.registry}: the run had stopped before "
                "registering"
            )
    elif main_process and result.adapter_dir is not None:
        final = result.metrics.get("final_loss")
        loss = f"final loss {final:.4g}" if isinstance(final, (int, float)) else "no loss recorded"
        print(f"adapter written to {result.adapter_dir} ({result.steps_done} steps, {loss})")
        if result.registered_as:
            how = "registered as" if result.registered_now else "already in the registry as"
            print(f"{how} {result.registered_as} ({cfg.registry})")
    return 0


def _figure(value: Any) -> float | int | None:
    """A number as strict JSON holds it: NaN/inf (unmeasured) and non-numbers become null."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def train_summary(cfg: Any, result: Any) -> dict[str, Any]:
    """The figures of the text summary of ``train``, as one JSON-ready mapping.

    ``best_loss`` is the lowest single-step training loss the run recorded (its checkpoint's record
    for a finished run; null when there is none); ``final_loss`` is the mean of its last 10 steps,
    as the text prints it.
    """
    metrics = dict(result.metrics)
    validation = {key: _figure(value) for key, value in sorted(metrics.items()) if key.startswith("val_")}
    finite = [loss for loss in result.losses if math.isfinite(loss)]
    return {
        "ok": True,
        "output_dir": str(cfg.output_dir),
        "adapter": str(result.adapter_dir) if result.adapter_dir is not None else None,
        "already_complete": bool(result.already_complete),
        "steps": result.steps_done,
        "adapter_type": cfg.adapter_type,
        "final_loss": _figure(metrics.get("final_loss")),
        "best_loss": min(finite) if finite else None,
        "probe_loss_start": _figure(result.probe_loss_start),
        "probe_loss_end": _figure(result.probe_loss_end),
        "median_step_seconds": _figure(metrics.get("median_step_seconds")),
        "validation": validation,
        "registry": cfg.registry,
        "registered_as": result.registered_as,
        "registered_now": bool(result.registered_now),
    }


def resume_command(args: argparse.Namespace) -> str:
    """The command line that continues an interrupted run: this one, with ``resume=auto``.

    ``resume=`` overrides are dropped (``none`` would start over; ``auto`` finds the new checkpoint),
    and ``--set resume=auto`` added where the config file sets another value.
    """
    import shlex

    from .config import load_config

    kept = [item for item in args.overrides if item.split("=", 1)[0].strip() != "resume"]
    words = ["cosmos-ros", "train", "--config", args.config]
    for item in kept:
        words += ["--set", item]
    if load_config(args.config, kept).resume != "auto":
        words += ["--set", "resume=auto"]
    if args.no_progress:
        words.append("--no-progress")
    if getattr(args, "json", False):
        words.append("--json")
    line = shlex.join(words)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        line += "   (under the same launcher, e.g. torchrun, as before)"
    return line
