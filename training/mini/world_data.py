"""Clips of the procedural robot world for training cosmos-mini.

Episodes are rendered at the model's frame rate straight from :mod:`cosmos_ros.bag_tools.world`
(no bags in between), in parallel worker processes. Which episodes train and which are held out
is fixed by seed ranges, so held-out numbers never see a training episode, and the demo's bags
(seeds from world.DEMO_SEED_BASE) are episodes no stage of the model build ever rendered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from cosmos_ros.bag_tools.world import HELD_OUT_SEED_BASE, make_episode, render_episode

__all__ = ["HELD_OUT_SEED_BASE", "WorldSpec", "clip_starts", "render_episodes"]
#: One episode lasts 3 s; at 16 fps that is 48 frames.
EPISODE_SECONDS = 3.0


@dataclass(frozen=True)
class WorldSpec:
    """The size of what is rendered: frame size, frame rate, clip length."""

    height: int = 64
    width: int = 96
    fps: float = 16.0
    clip_frames: int = 17

    @property
    def episode_frames(self) -> int:
        return round(EPISODE_SECONDS * self.fps)


def _render(job: tuple[str, int, WorldSpec]) -> np.ndarray:
    name, seed, spec = job
    episode = make_episode(name, seed, frames=spec.episode_frames, fps=spec.fps)
    return render_episode(episode, spec.height, spec.width)


def render_episodes(
    embodiments: Sequence[str], seeds: Sequence[int], spec: WorldSpec, workers: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """Every (embodiment, seed) episode: uint8 ``[N, T, H, W, 3]`` and the N prompts, in order."""
    jobs = [(name, seed, spec) for name in embodiments for seed in seeds]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            videos = list(pool.map(_render, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
    else:
        videos = [_render(job) for job in jobs]
    prompts = [make_episode(name, seed, spec.episode_frames, spec.fps).prompt for name, seed, _ in jobs]
    return np.stack(videos), prompts


def clip_starts(spec: WorldSpec, stride: int) -> list[int]:
    """Start frames of the clips cut from one episode."""
    return list(range(0, spec.episode_frames - spec.clip_frames + 1, stride))
