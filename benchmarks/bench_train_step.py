"""Seconds per LoRA/DoRA train step and peak GPU memory: stock diffusers vs cosmos_ros's trainer.

Builds the REAL Cosmos-Predict2.5-2B transformer configuration (ANCHORS.md) with random bf16
weights, 432x768x93 (latents [1, 16, 24, 54, 96], 31,104 tokens), LoRA/DoRA r32 on the recipe's
six targets, batch 1, and in ONE process measures:

- stock: diffusers transformer + peft adapter (fp32 adapter weights) + ``enable_gradient_checkpointing``
  + bf16 autocast + AdamW (foreach), text embeddings of 100352 channels through ``crossattn_proj``;
- ours: the trainer's own step (cosmos_ros.training): projected cached text (``crossattn_proj``
  skipped), the lean adapter forward (``training/lean_forward.py``; ``--peft-forward`` for
  peft's own), per-block checkpointing (``--ckpt full|save_attention|none``, ``--skip-blocks N``),
  optional per-block ``torch.compile`` (``--compile``), fused AdamW, optional attention backend.

Usage (GPU):   python benchmarks/bench_train_step.py --adapters lora dora --compile --ckpt save_attention
Sanity (CPU):  python benchmarks/bench_train_step.py --quick
Prints one JSON line per configuration and a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from typing import Any

import torch
from common import COSMOS_2B_CONFIG as REAL_2B
from common import RECIPE_TARGETS

QUICK = dict(
    REAL_2B,
    num_attention_heads=2,
    attention_head_dim=32,
    num_layers=2,
    adaln_lora_dim=8,
    text_embed_dim=64,
    crossattn_proj_in_channels=128,
    encoder_hidden_states_channels=64,
)
TARGETS = list(RECIPE_TARGETS)


def build_model(config: dict[str, Any], device: torch.device, dtype: torch.dtype) -> Any:
    from diffusers import CosmosTransformer3DModel

    torch.manual_seed(0)
    with torch.device(device):
        model = CosmosTransformer3DModel(**config)
    return model.to(dtype).requires_grad_(False)


def run_mode(args: argparse.Namespace, mode: str, adapter: str, device: torch.device) -> dict[str, Any]:
    from cosmos_ros.training.adapters import attach_adapter
    from cosmos_ros.training.lean_forward import install_lean_forward
    from cosmos_ros.training.loop import prepare_blocks
    from cosmos_ros.training.objective import build_inputs, per_sample_loss, predict_velocity

    config = QUICK if args.quick else REAL_2B
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    latent_shape = (1, 16, 3, 8, 12) if args.quick else (1, 16, 24, 54, 96)
    tokens = 16 if args.quick else 512
    model = build_model(config, device, dtype)
    params = attach_adapter(model, adapter, args.rank, args.rank, TARGETS)
    n_trainable = sum(p.numel() for p in params)
    if mode == "stock":
        model.enable_gradient_checkpointing()
        text = torch.randn(1, tokens, config["crossattn_proj_in_channels"], device=device, dtype=dtype)
        optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-3)
    else:
        model.crossattn_proj = torch.nn.Identity()
        if not args.peft_forward:
            install_lean_forward(model)
        if args.attention_backend:
            model.set_attention_backend(args.attention_backend)
        prepare_blocks(model, args.ckpt, args.skip_blocks, args.compile)
        text = torch.randn(1, tokens, config["encoder_hidden_states_channels"], device=device, dtype=dtype)
        optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-3, fused=device.type == "cuda")
    model.train()
    clean = torch.randn(latent_shape, device=device)
    noise = torch.randn(latent_shape, device=device)
    inputs = build_inputs(clean, noise, torch.tensor([0.7], device=device), torch.tensor([1]), 1e-4, dtype)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step() -> float:
        with autocast:
            loss = per_sample_loss(predict_velocity(model, inputs, text), inputs).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        step()
    warmup_s = time.perf_counter() - t0
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    if args.profile:
        profile_step(step, device, f"{args.profile}.{adapter}.{mode}.txt")
    label = (
        "stock"
        if mode == "stock"
        else f"ours(ckpt={args.ckpt},skip={args.skip_blocks},compile={args.compile},"
        f"forward={'peft' if args.peft_forward else 'lean'})"
    )
    return {
        "mode": label,
        "adapter": adapter,
        "rank": args.rank,
        "trainable_params": n_trainable,
        "median_step_s": statistics.median(times),
        "min_step_s": min(times),
        "warmup_s": warmup_s,
        "peak_gib": peak,
        "steps": args.steps,
        "latents": list(latent_shape),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
    }


def profile_step(step: Any, device: torch.device, path: str) -> None:
    """Write the kernels of one more step, by device time, to ``path`` (where the time goes)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    with open(path, "w") as f:
        f.write(prof.key_averages().table(sort_by=sort_by, row_limit=40, max_name_column_width=90))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny model on the CPU: a sanity check, not a result"
    )
    parser.add_argument("--adapters", nargs="+", default=["lora", "dora"], choices=["lora", "dora"])
    parser.add_argument("--modes", nargs="+", default=["stock", "ours"], choices=["stock", "ours"])
    parser.add_argument("--rank", type=int, default=32, help="adapter rank (default 32)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10; quick: 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; quick: 1)")
    parser.add_argument(
        "--ckpt",
        default="full",
        choices=["full", "save_attention", "none"],
        help="our checkpointing mode (default full)",
    )
    parser.add_argument(
        "--skip-blocks", type=int, default=0, help="last N blocks not checkpointed (default 0)"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile each block (ours)")
    parser.add_argument("--attention-backend", default=None, help="diffusers attention backend for ours")
    parser.add_argument(
        "--peft-forward",
        action="store_true",
        help="ours with peft's own adapter forward instead of training/lean_forward.py (ablation)",
    )
    parser.add_argument(
        "--profile", default=None, metavar="PREFIX",
        help="after timing, profile one more step and write its kernel table to PREFIX.<adapter>.<mode>.txt",
    )  # fmt: skip
    parser.add_argument("--out", default=None, help="also append each JSON line to this file")
    args = parser.parse_args()
    args.steps = args.steps or (3 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    rows = []
    for adapter in args.adapters:
        for mode in args.modes:
            row = run_mode(args, mode, adapter, device)
            gc.collect()  # the model of the last mode goes before the next is built
            if device.type == "cuda":
                torch.cuda.empty_cache()
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
            rows.append(row)
    print("\n| adapter | mode | s/step (median) | peak GiB | trainable |\n| --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['adapter']} | {r['mode']} | {r['median_step_s']:.3f} | {r['peak_gib']:.1f} | "
            f"{r['trainable_params'] / 1e6:.1f} M |"
        )


if __name__ == "__main__":
    main()
