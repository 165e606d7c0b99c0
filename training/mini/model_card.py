"""The model card (README.md with Hugging Face front matter) written into a cosmos-mini folder."""

from __future__ import annotations

from typing import Any


def model_card(record: dict[str, Any]) -> str:
    """A Hub-style card: what cosmos-mini is, how it was trained, and its measured numbers."""
    vae, world = record["vae"], record["transformer"]
    build = record["build"]
    last = world["curve"][-1] if world.get("curve") else {}
    embodiments = ", ".join(record["pretrain_embodiments"])
    return f"""---
library_name: diffusers
pipeline_tag: image-to-video
tags: [cosmos, world-model, robotics, toy-model, cosmos_ros]
license: apache-2.0
---

# cosmos-mini

A small Cosmos Predict 2.5 world model of a procedural robot world, built and trained by
cosmos_ros (`cosmos-ros make-mini-model`). Same diffusers classes and folder layout as
`nvidia/Cosmos-Predict2.5-2B` (Wan 2.1 VAE with 8x spatial / 4x temporal compression,
`CosmosTransformer3DModel`, the released UniPC flow scheduler), at 64x96 pixels, 17 frames.

**A toy world that proves the adaptation loop, not Cosmos quality.** Its text encoder is a tiny
random Qwen2.5-VL (prompts still differ, so they condition); the VAE and the transformer are
trained.

## Training
- World: OpenCV-drawn pick-and-place episodes (`cosmos_ros.bag_tools.world`), 3 s at
  {build["spec"]["fps"]:g} fps, pretraining embodiments: {embodiments}. The target embodiments
  (e.g. `ceiling_arm`) were never seen.
- VAE: {vae["settings"]["frame_steps"]} steps on single frames, then {vae["settings"]["clip_steps"]}
  steps on clips mixed with frames; held-out clip PSNR {vae["held_out_clip_psnr"]:.2f} dB
  (target embodiment: {vae["held_out_target_clip_psnr"]:.2f} dB).
- Transformer: full-parameter, cosmos_ros' rectified-flow objective, {world["settings"]["steps"]}
  steps of batch {world["settings"]["batch"]} over {world.get("training_clips", "?")} clips;
  held-out velocity loss (EMA weights) {last.get("val_loss_ema", float("nan")):.4f}.
- Seed {build["seed"]}; every setting and curve is in `training_record.json`.
"""
