"""Shared fixtures for the training tests: a tiny base model and a small synthetic video dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_H, TINY_W, TINY_FRAMES = 64, 96, 9


def make_clip(index: int, frames: int = TINY_FRAMES, height: int = TINY_H, width: int = TINY_W) -> np.ndarray:
    """A coloured square moving across a gradient: distinct per ``index``, smooth in time."""
    yy, xx = np.mgrid[0:height, 0:width]
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    rng = np.random.default_rng(index)
    colour = rng.integers(60, 255, size=3)
    for t in range(frames):
        base = np.stack([(xx * 2 + index * 40) % 256, (yy * 3) % 256, np.full_like(xx, 40 * index % 256)], -1)
        x0 = (8 + t * 6 + index * 10) % (width - 16)
        mask = (xx >= x0) & (xx < x0 + 16) & (yy >= 20) & (yy < 36)
        frame = base.astype(np.uint8)
        frame[mask] = colour
        video[t] = frame
    return video


def make_plain_dataset(root: Path, clips: int = 3, frames: int = TINY_FRAMES) -> Path:
    """The recipe's plain layout: videos/<id>.mp4 + metas/<id>.txt."""
    from cosmos_ros.media.video import write_video

    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "metas").mkdir(parents=True, exist_ok=True)
    prompts = [
        "The robot arm picks up the red cube.",
        "A mobile robot drives down a corridor.",
        "The gripper opens and closes.",
        "The robot moves forward and turns left.",
    ]
    for i in range(clips):
        write_video(root / "videos" / f"clip_{i:02d}.mp4", make_clip(i, frames), 16.0)
        (root / "metas" / f"clip_{i:02d}.txt").write_text(prompts[i % len(prompts)] + "\n", encoding="utf-8")
    return root


def tiny_overrides(base: Path, dataset: Path, out: Path, cache: Path, **extra: object) -> list[str]:
    """``--set`` items that point the tiny_cpu config at the fixtures."""
    items = [f"base_model={base}", f"dataset={dataset}", f"output_dir={out}", f"cache_dir={cache}"]
    items += [f"{k}={v}" for k, v in extra.items()]
    return items


def one_thread():
    """Generator for an autouse fixture: tiny CPU models run fastest (and bit-reproducibly) on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
