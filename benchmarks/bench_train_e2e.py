"""End-to-end time of a recipe-sized adapter training run, precompute included.

A 92-clip, 100-epoch run takes hours, so this measures a short run of the real trainer and
scales each phase by how often the full run pays it:

- a model folder in the released layout: the real 2B transformer, the Wan 2.1 VAE and a text
  encoder of Cosmos-Reason1-7B's architecture (Qwen2.5-VL-7B, 8.3 B parameters), all random bf16
  weights written to disk, so precompute loads and runs what a real one does;
- a dataset in the recipe's ``videos/`` + ``metas/`` layout: ``--clips`` videos of 93 frames at
  432x768 (``--val-clips`` of them held out for validation, the trainer's default 2);
- ``cosmos_ros.training.loop.train`` (what ``cosmos-ros train`` runs) with
  ``training/configs/<--config>.yaml`` and ``--set`` overrides, for ``--steps`` steps with a
  checkpoint and a validation every ``--every`` steps, each phase timed from the outside.

Figure for the full run: fixed costs (model loads, compilation, probes, output) + per-clip
precompute x (92 + validation clips) + median step x 9200 + checkpoint and validation costs x
the counts the config's ``checkpoint_every`` / ``validation_every`` give for 9200 steps.

Usage (GPU):  python benchmarks/bench_train_e2e.py --out train_e2e.json \\
                  --set gradient_checkpointing=save_attention attention_backend=_native_cudnn
Sanity (CPU): python benchmarks/bench_train_e2e.py --quick
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import build_model_dir, environment, median, sync, write_results

RECIPE_CLIPS = 92
RECIPE_EPOCHS = 100
QUICK_OVERRIDES = [
    "height=64", "width=96", "num_frames=9", "validation_steps=2", "device=cpu", "mixed_precision=no",
    "compile_blocks=false",
]  # fmt: skip


class PhaseClock:
    """Wall time of every call of the wrapped functions, by phase; a call made inside another
    timed call (validation's own loss pass) belongs to the outer phase only."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = defaultdict(list)
        self._inside = False

    def wrap(self, owner: Any, attr: str, phase: str) -> None:
        original: Callable[..., Any] = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._inside:
                return original(*args, **kwargs)
            self._inside = True
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                sync()
                self.calls[phase].append(time.perf_counter() - started)
                self._inside = False

        setattr(owner, attr, timed)


def write_dataset(root: Path, clips: int, frames: int, height: int, width: int) -> Path:
    """The recipe's layout: videos/<id>.mp4 + metas/<id>.txt (one prompt each); moving content."""
    import numpy as np

    from cosmos_ros.media.video import write_video

    (root / "videos").mkdir(parents=True)
    (root / "metas").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(clips):
        base = rng.integers(0, 256, size=(height // 8, width // 8, 3), dtype=np.uint8)
        base = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))
        video = np.stack(
            [
                np.roll(base, 4 * t, axis=1) ^ ((xx + yy + 3 * t) % 256).astype(np.uint8)[..., None]
                for t in range(frames)
            ]
        )
        write_video(root / "videos" / f"episode_{i:03d}.mp4", video, 16.0)
        (root / "metas" / f"episode_{i:03d}.txt").write_text(
            f"pick the red cube and place it in bin {i % 3}\n"
        )
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny model on the CPU: a sanity check, not a result")
    p.add_argument(
        "--config", default="lora_recipe", help="training config name or path (default lora_recipe)"
    )
    p.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, as for cosmos-ros train"
    )
    p.add_argument("--clips", type=int, default=6, help="clips written, validation ones included (default 6)")
    p.add_argument("--val-clips", type=int, default=2, help="of those held out for validation (default 2)")
    p.add_argument("--steps", type=int, default=24, help="training steps of the short run (default 24)")
    p.add_argument("--every", type=int, default=12, help="checkpoint and validate every N steps (default 12)")
    p.add_argument(
        "--work", default=None, help="folder for model, dataset, cache and run (default: a new temp dir)"
    )
    p.add_argument("--out", default="bench_train_e2e.json")
    args = p.parse_args()

    from cosmos_ros.training import loop, precompute, validation
    from cosmos_ros.training.config import load_config

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench_train_e2e_"))
    t0 = time.perf_counter()
    model_dir = build_model_dir(work / "model", text_encoder="reason1", quick=args.quick)
    build_s = time.perf_counter() - t0
    overrides = [
        f"base_model={model_dir}",
        f"dataset={work / 'dataset'}",
        f"output_dir={work / 'run'}",
        f"cache_dir={work / 'cache'}",
        f"max_steps={args.steps}",
        f"checkpoint_every={args.every}",
        f"validation_every={args.every}",
        f"validation_clips={args.val_clips}",
        *(QUICK_OVERRIDES if args.quick else []),
        *args.set,
    ]
    cfg = load_config(args.config, overrides)
    write_dataset(work / "dataset", args.clips, cfg.num_frames, cfg.height, cfg.width)
    full_cfg = load_config(args.config, args.set)  # the counts of the full run come from the user's config

    clock = PhaseClock()
    clock.wrap(precompute, "precompute", "precompute")
    clock.wrap(validation, "fixed_draw_loss", "probe")
    clock.wrap(loop, "save_checkpoint", "checkpoint")
    clock.wrap(validation.Validator, "run", "validation")
    clock.wrap(validation.Validator, "__init__", "validation_setup")
    clock.wrap(loop, "write_output", "output")
    events: dict[str, list[Any]] = defaultdict(list)
    started = time.perf_counter()
    result = loop.train(cfg, progress=lambda e: events[e.stage].append(e))
    total_s = time.perf_counter() - started

    # Per-occurrence costs from the steady state; whatever the first occurrence paid on top
    # (compilation, first loads) is a fixed cost of the run, as is everything not timed here.
    steps = [e.metrics["step_s"] for e in events["train"]]
    step_s = median(steps[2:] if len(steps) > 4 else steps)
    clip_marks = [e.elapsed for e in events["precompute"]]
    per_clip = median([b - a for a, b in zip([0.0, *clip_marks], clip_marks, strict=False)])
    calls = clock.calls
    ckpt_s, val_s = min(calls["checkpoint"]), min(calls["validation"])
    timed = sum(sum(v) for v in calls.values()) + sum(steps)
    fixed = {
        "untimed_s": total_s - timed,  # transformer load, adapter attach, optimizer, loop overhead
        "precompute_model_loads_s": sum(calls["precompute"]) - per_clip * args.clips,
        "first_steps_extra_s": sum(steps) - step_s * len(steps),
        "first_checkpoint_extra_s": sum(calls["checkpoint"]) - ckpt_s * len(calls["checkpoint"]),
        "first_validation_extra_s": sum(calls["validation"]) - val_s * len(calls["validation"]),
        "probes_s": sum(calls["probe"]),
        "validation_setup_s": sum(calls["validation_setup"]),
        "output_s": sum(calls["output"]),
    }

    full_steps = RECIPE_CLIPS * RECIPE_EPOCHS
    checkpoints = full_steps // full_cfg.checkpoint_every + (full_steps % full_cfg.checkpoint_every != 0)
    validations = (full_steps - 1) // full_cfg.validation_every + 1 if full_cfg.validation_every else 1
    parts = {
        "fixed_s": sum(fixed.values()),
        "precompute_s": per_clip * (RECIPE_CLIPS + args.val_clips),
        "steps_s": step_s * full_steps,
        "checkpoints_s": ckpt_s * checkpoints,
        "validations_s": val_s * validations,
    }
    estimate_h = sum(parts.values()) / 3600
    results = {
        "environment": environment(),
        "config": args.config,
        "overrides": args.set,
        "short_run": {
            "clips": args.clips,
            "val_clips": args.val_clips,
            "steps": args.steps,
            "every": args.every,
            "build_model_dir_s": build_s,
            "train_call_s": total_s,
            "precompute_total_s": sum(calls["precompute"]),
            "precompute_per_clip_s": per_clip,
            "step_times_s": steps,
            "median_step_s": step_s,
            "phases_s": calls,
            "fixed_costs_s": fixed,
            "checkpoint_s": ckpt_s,
            "validation_s": val_s,
            "probe_loss_start": result.probe_loss_start,
            "probe_loss_end": result.probe_loss_end,
            "adapter_dir_written": result.adapter_dir is not None,
        },
        "full_run": {
            "clips": RECIPE_CLIPS,
            "epochs": RECIPE_EPOCHS,
            "steps": full_steps,
            "checkpoints": checkpoints,
            "validations": validations,
            **parts,
            "estimate_hours": estimate_h,
            "recipe_hours": 17.0,
            "speedup_vs_recipe": 17.0 / estimate_h if estimate_h > 0 else math.nan,
        },
    }
    write_results(args.out, results)
    print(json.dumps(results["short_run"], default=str, indent=1)[:3000])
    print(json.dumps(results["full_run"], indent=1))


if __name__ == "__main__":
    main()
