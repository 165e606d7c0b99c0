"""Seconds per training step of cosmos-mini's build (VAE and transformer), to plan a GPU build.

Why: a cosmos-mini build is time-boxed (``make-mini-model --vae-seconds/--world-seconds``), so
how many steps a setting buys decides the recipe. Times the VAE's frame and clip steps (float32
and bf16 autocast, several clip batch sizes) and the transformer's step at two batch sizes, on
rendered episodes of the procedural world (content does not change the step time).

    python benchmarks/bench_mini_build.py -o benchmarks/results/mini_build_steps.json
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import common
import numpy as np
import torch


def _time_steps(step: Any, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    common.sync()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    common.sync()
    return (time.perf_counter() - start) / repeats


def vae_steps(device: torch.device, clip_batches: list[int], frame_batch: int, repeats: int) -> list[dict]:
    from cosmos_ros.training.mini.build import pretrain_embodiments
    from cosmos_ros.training.mini.vae_training import inflate_from_frames, motion_loss, reconstruct, to_input
    from cosmos_ros.training.mini.world_data import WorldSpec, render_episodes
    from diffusers import AutoencoderKLWan

    from cosmos_ros.model.mini import VAE_CONFIG

    spec = WorldSpec()
    episodes, _ = render_episodes(pretrain_embodiments(), range(2), spec)
    vae = inflate_from_frames(AutoencoderKLWan(**VAE_CONFIG)).to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-4, fused=device.type == "cuda")
    rows = []
    for bf16 in (False, True):
        for kind, batch in [("frames", frame_batch)] + [("clips", b) for b in clip_batches]:
            rng = np.random.default_rng(0)
            length = 1 if kind == "frames" else spec.clip_frames

            def step(batch: int = batch, length: int = length, bf16: bool = bf16, rng: Any = rng) -> None:
                picks = rng.integers(0, len(episodes), batch)
                starts = rng.integers(0, episodes.shape[1] - length + 1, batch)
                x = to_input(
                    np.stack([episodes[p, s : s + length] for p, s in zip(picks, starts, strict=True)]),
                    device,
                )
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
                    rec, _ = reconstruct(vae, x)
                rec = rec.float()
                loss = torch.nn.functional.mse_loss(rec, x) + (motion_loss(rec, x) if length > 1 else 0)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            seconds = _time_steps(step, repeats)
            rows.append({"part": "vae", "kind": kind, "batch": batch, "bf16": bf16, "s_per_step": seconds,
                         "samples_per_s": batch / seconds})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def transformer_steps(device: torch.device, batches: list[int], repeats: int) -> list[dict]:
    from cosmos_ros.training.mini.world_training import WorldTrainSettings, _draw, loss_on
    from diffusers import CosmosTransformer3DModel

    from cosmos_ros.model.mini import TRANSFORMER_CONFIG
    from cosmos_ros.model.tiny import TEXT_HIDDEN, TEXT_LAYERS

    settings = WorldTrainSettings()
    model = CosmosTransformer3DModel(
        **TRANSFORMER_CONFIG, crossattn_proj_in_channels=TEXT_HIDDEN * TEXT_LAYERS
    )
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    generator = torch.Generator().manual_seed(0)
    rows = []
    for batch in batches:
        latents = torch.randn(batch, 16, 5, 8, 12, device=device)
        text = torch.randn(batch, 512, TEXT_HIDDEN * TEXT_LAYERS, device=device)

        def step(batch: int = batch, latents: torch.Tensor = latents, text: torch.Tensor = text) -> None:
            sigma, num_cond, _ = _draw(batch, settings, generator)
            noise = torch.randn_like(latents)
            loss = loss_on(model, latents, text, sigma.to(device), num_cond.to(device), noise, settings)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        seconds = _time_steps(step, repeats)
        bf16 = device.type == "cuda"  # loss_on autocasts on CUDA
        rows.append({"part": "transformer", "batch": batch, "bf16": bf16, "s_per_step": seconds,
                     "samples_per_s": batch / seconds})  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", help="write the JSON results here (default: print only)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per setting (default: 10)")
    parser.add_argument("--quick", action="store_true", help="small batches, 2 repeats: a CPU check")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    repeats = 2 if args.quick else args.repeats
    clip_batches, frame_batch, world_batches = ([1], 2, [2]) if args.quick else ([8, 16, 48], 64, [64, 256])
    results = {
        "benchmark": "mini_build_steps",
        "environment": common.environment(),
        "rows": vae_steps(device, clip_batches, frame_batch, repeats)
        + transformer_steps(device, world_batches, repeats),
    }
    if args.output:
        common.write_results(args.output, results)


if __name__ == "__main__":
    main()
