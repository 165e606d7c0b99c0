"""Pretrain cosmos-mini's transformer, full-parameter, with the trainer's rectified-flow objective.

The inputs, target and loss are built by :mod:`cosmos_ros.training.objective` (the functions an
adapter run uses), so the base model learns exactly the velocity convention, conditioning layout
and timestep format that the stock pipeline samples with. Latents come from the trained VAE,
normalised as the pipeline normalises them; prompts are the text encoder's raw per-layer hidden
states (the transformer's own ``crossattn_proj`` is trained with it).

An exponential moving average of the weights is what gets saved (steadier samples).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cosmos_ros.training.objective import (
    build_inputs,
    per_sample_loss,
    predict_velocity,
    shifted_logit_normal,
)

from cosmos_ros.progress import ProgressCallback, Stopwatch

from .vae_training import bar_position, bar_total, run_progress

log = logging.getLogger(__name__)


@dataclass
class WorldTrainSettings:
    """Optimisation of the transformer pretraining (defaults: a GPU build)."""

    steps: int = 12000
    batch: int = 64
    learning_rate: float = 3e-4
    warmup_steps: int = 500
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    sigma_shift: float = 3.0
    logit_normal_mean: float = 0.0
    logit_normal_std: float = 1.2
    prompt_dropout: float = 0.1
    cond_timestep: float = 1e-4
    eval_every: int = 1000
    checkpoint_every: int = 2000
    #: Stop (and schedule the learning rate) by wall time instead, when set.
    max_seconds: float | None = None
    seed: int = 0


@torch.no_grad()
def encode_clips(vae: Any, clips: np.ndarray, device: torch.device, batch: int = 32) -> torch.Tensor:
    """Normalised latents ``[N, C, T', h, w]`` of uint8 clips ``[N, T, H, W, 3]`` (float32, on CPU)."""
    from .vae_training import to_input

    mean = torch.tensor(vae.config.latents_mean, device=device).view(1, -1, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std, device=device).view(1, -1, 1, 1, 1)
    out = []
    for i in range(0, len(clips), batch):
        z = vae.encode(to_input(clips[i : i + batch], device)).latent_dist.mode().float()
        out.append(((z - mean) * inv_std).cpu())
    return torch.cat(out)


def _draw(batch: int, settings: WorldTrainSettings, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Sigmas, conditioning latent-frame counts (1 or 2, even odds) and prompt-dropout flags."""
    u = torch.randn(batch, generator=generator) * settings.logit_normal_std + settings.logit_normal_mean
    sigma = shifted_logit_normal(u, settings.sigma_shift)
    num_cond = 1 + (torch.rand(batch, generator=generator) < 0.5).long()
    drop = torch.rand(batch, generator=generator) < settings.prompt_dropout
    return sigma, num_cond, drop


def loss_on(
    model: Any,
    latents: torch.Tensor,
    text: torch.Tensor,
    sigma: torch.Tensor,
    num_cond: torch.Tensor,
    noise: torch.Tensor,
    settings: WorldTrainSettings,
) -> torch.Tensor:
    """Mean per-sample velocity loss of one batch (the adapter trainer's objective)."""
    dtype = next(model.parameters()).dtype
    inputs = build_inputs(latents, noise, sigma, num_cond, settings.cond_timestep, dtype)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=latents.is_cuda)
    with autocast:
        prediction = predict_velocity(model, inputs, text.to(dtype))
    return per_sample_loss(prediction, inputs).mean()


def train_world_model(
    model: Any,
    latents: torch.Tensor,
    prompt_index: torch.Tensor,
    text_table: torch.Tensor,
    empty_index: int,
    val: tuple[torch.Tensor, torch.Tensor],
    settings: WorldTrainSettings,
    device: torch.device,
    work_dir: Path,
    progress: ProgressCallback | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train ``model`` on ``latents`` ``[N, C, T, h, w]``; returns (EMA model, training record).

    ``prompt_index[i]`` selects clip i's row of ``text_table`` ``[P, L, D]``; ``empty_index`` is
    the empty prompt's row (prompt dropout). ``val``: held-out (latents, prompt index), scored at
    fixed sigmas every ``eval_every`` steps. Continues from ``work_dir/world_checkpoint.pt``.
    """
    model.to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
        betas=(0.9, 0.99),
        fused=device.type == "cuda",
    )
    record: dict[str, Any] = {"settings": asdict(settings), "curve": []}
    start = _resume(work_dir, model, ema, optimizer, record)
    latents, prompt_index, text_table = latents.to(device), prompt_index.to(device), text_table.to(device)
    generator = torch.Generator().manual_seed(settings.seed * 7919 + start)
    watch = Stopwatch(progress, "train transformer", bar_total(settings.steps, settings.max_seconds))
    started = time.monotonic()
    step = start
    while (progress := run_progress(step, settings.steps, started, settings.max_seconds)) < 1.0:
        warm = min(1.0, (step + 1) / settings.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = settings.learning_rate * warm * max(cosine, 0.05)
        picks = torch.randint(0, len(latents), (settings.batch,), generator=generator).to(device)
        sigma, num_cond, drop = _draw(settings.batch, settings, generator)
        rows = torch.where(
            drop.to(device), torch.full_like(prompt_index[picks], empty_index), prompt_index[picks]
        )
        clean = latents[picks]
        noise = torch.randn(clean.shape, generator=generator).to(device)
        loss = loss_on(model, clean, text_table[rows], sigma.to(device), num_cond.to(device), noise, settings)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        decay = min(settings.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
        done = step = step + 1
        finished = run_progress(done, settings.steps, started, settings.max_seconds) >= 1.0
        if done % settings.eval_every == 0 or finished:
            value = validation_loss(ema, val[0].to(device), text_table[val[1].to(device)], settings)
            record["curve"].append({"step": done, "train_loss": loss.item(), "val_loss_ema": value,
                                    "seconds": round(time.monotonic() - started, 1)})  # fmt: skip
            log.info("transformer step %d: loss %.4f, held-out loss (EMA) %.4f", done, loss.item(), value)
        if done % settings.checkpoint_every == 0 and not finished:
            _checkpoint(work_dir, model, ema, optimizer, record, done)
        where = bar_position(done, settings.steps, started, settings.max_seconds)
        watch.report(where, loss=loss.item(), steps=done)
    record["steps_done"] = step
    return ema, record


@torch.no_grad()
def validation_loss(
    model: Any, latents: torch.Tensor, text: torch.Tensor, settings: WorldTrainSettings
) -> float:
    """Held-out velocity loss averaged over fixed sigmas (0.1 .. 0.9) and one conditioning frame."""
    generator = torch.Generator().manual_seed(1234)
    values = []
    for s in (0.1, 0.3, 0.5, 0.7, 0.9):
        for i in range(0, len(latents), 64):
            clean = latents[i : i + 64]
            b = len(clean)
            noise = torch.randn(clean.shape, generator=generator).to(clean.device)
            sigma = torch.full((b,), s, device=clean.device)
            ones = torch.ones(b, dtype=torch.long, device=clean.device)
            values.append(float(loss_on(model, clean, text[i : i + 64], sigma, ones, noise, settings)) * b)
    return sum(values) / (5 * len(latents))


def _checkpoint(
    work_dir: Path, model: Any, ema: Any, optimizer: Any, record: dict[str, Any], step: int
) -> None:
    from cosmos_ros.atomic import atomic_path

    with atomic_path(work_dir / "world_checkpoint.pt") as tmp:
        torch.save({"step": step, "model": model.state_dict(), "ema": ema.state_dict(),
                    "optimizer": optimizer.state_dict(), "record": json.dumps(record)}, tmp)  # fmt: skip


def _resume(work_dir: Path, model: Any, ema: Any, optimizer: Any, record: dict[str, Any]) -> int:
    path = work_dir / "world_checkpoint.pt"
    if not path.is_file():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])
    record.update(json.loads(state["record"]))
    log.info("transformer: continuing from step %d (%s)", state["step"], path)
    return int(state["step"])
