"""``cosmos-ros make-mini-model``: build cosmos-mini (prompts -> VAE -> transformer -> folder)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from cosmos_ros.cli import CliError

from . import STAGES

_D = "(default: %(default)s)"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "make-mini-model",
        help="train cosmos-mini, the small world model of the procedural robot world (GPU: minutes)",
        description=(
            "Build cosmos-mini in stages (prompts, vae, transformer, assemble) inside --work; each stage "
            "keeps checkpoints there, so the same command continues an interrupted build. The package "
            "ships cosmos-mini's trained VAE (--vae shipped uses it); the transformer does not ship yet."
        ),
    )
    p.add_argument("--work", required=True, help="work folder for stage results and checkpoints")
    p.add_argument("-o", "--output", help="model folder to write in the 'assemble' stage")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated stages to run {_D}")
    p.add_argument("--device", default="auto", help=f"cuda, cpu or auto {_D}")
    p.add_argument("--seed", type=int, default=0, help=f"weights and data seed {_D}")
    p.add_argument("--episodes", type=int, default=400, help=f"training episodes per embodiment {_D}")
    p.add_argument("--vae-frame-steps", type=int, default=2000, help=f"VAE steps on single frames {_D}")
    p.add_argument("--vae-clip-steps", type=int, default=4000, help=f"VAE steps with clips {_D}")
    p.add_argument("--world-steps", type=int, default=12000, help=f"transformer steps {_D}")
    p.add_argument("--world-batch", type=int, default=64, help=f"transformer batch size {_D}")
    p.add_argument(
        "--vae-init",
        help="continue VAE training from this saved VAE folder (default: a fresh, inflated VAE)",
    )
    p.add_argument(
        "--vae",
        metavar="DIR",
        help="a trained VAE folder (with its training_record.json) for the transformer and assemble "
        "stages instead of WORK/vae; 'shipped' is the one in this install "
        "(cosmos_ros/assets/cosmos-mini/vae) (default: WORK/vae)",
    )
    p.add_argument(
        "--overrides",
        metavar="JSON",
        help='other build settings as JSON, e.g. \'{"vae": {"clip_batch": 48, "learning_rate": 5e-4}}\' '
        "(names: the MiniBuild, VaeTrainSettings and WorldTrainSettings fields; default: none)",
    )
    p.add_argument(
        "--vae-seconds",
        type=float,
        default=None,
        help="train the VAE for this many seconds instead of a step count (default: by steps)",
    )
    p.add_argument(
        "--world-seconds",
        type=float,
        default=None,
        help="train the transformer for this many seconds instead (default: by steps)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from cosmos_ros.progress import TqdmProgress

    from .build import MiniBuild, apply_overrides, stage_assemble, stage_prompts, stage_transformer, stage_vae

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise CliError(f"--stages: unknown stage(s) {', '.join(unknown)}; accepted: {', '.join(STAGES)}")
    if "assemble" in stages and not args.output:
        raise CliError("the 'assemble' stage writes the model folder: give -o/--output")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))  # fmt: skip
    if args.vae and "vae" in stages:
        raise CliError("--vae gives a trained VAE, so the 'vae' stage has nothing to do; "
                       "to train it further use --vae-init DIR")  # fmt: skip
    trained_vae = args.vae
    if trained_vae == "shipped":
        from cosmos_ros.model.mini import SHIPPED_DIR

        trained_vae = str(SHIPPED_DIR / "vae")
    build = MiniBuild(work_dir=args.work, seed=args.seed, episodes_per_embodiment=args.episodes,
                      vae_init=args.vae_init, trained_vae=trained_vae)  # fmt: skip
    build.vae.frame_steps, build.vae.clip_steps = args.vae_frame_steps, args.vae_clip_steps
    build.world.steps, build.world.batch = args.world_steps, args.world_batch
    build.vae.max_seconds, build.world.max_seconds = args.vae_seconds, args.world_seconds
    if args.overrides:
        try:
            build = apply_overrides(build, json.loads(args.overrides))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise CliError(f"--overrides: {exc}") from None
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    Path(args.work).mkdir(parents=True, exist_ok=True)
    logging.getLogger("cosmos_ros.training.mini").setLevel(logging.INFO)
    for stage in stages:
        print(f"make-mini-model: stage {stage}")
        try:
            if stage == "prompts":
                stage_prompts(build)
            elif stage == "vae":
                bar = TqdmProgress(unit="step" if args.vae_seconds is None else "s")
                record = stage_vae(build, device, bar)
                bar.close()
                print(f"  VAE held-out clip PSNR {record['held_out_clip_psnr']:.2f} dB "
                      f"(target embodiment {record['held_out_target_clip_psnr']:.2f} dB)")  # fmt: skip
            elif stage == "transformer":
                bar = TqdmProgress(unit="step" if args.world_seconds is None else "s")
                record = stage_transformer(build, device, bar)
                bar.close()
                print(f"  transformer held-out loss {record['curve'][-1]['val_loss_ema']:.4f}")
            else:
                print(f"  wrote {stage_assemble(build, Path(args.output))}")
        except (FileNotFoundError, ValueError) as exc:  # a missing input or a refused VAE: one line
            raise CliError(f"stage {stage}: {exc}") from None
    return 0
