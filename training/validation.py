"""Validation: few-step predictions from held-out first frames, PSNR/SSIM, validation loss.

The sampler is the stock pipeline's denoising loop (UniPC from the base's scheduler config,
conditioning latents kept clean with timestep ``cond_timestep``, their velocity replaced by the
ground-truth one) with guidance 1 (one forward per step), run on the cached latents and text
embeddings so no text encoder is needed; only the VAE is used, to decode.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import CachedLatents
from .objective import build_inputs, draw_sample, per_sample_loss, predict_velocity, sample_generator
from .trackers import RunLogger


@dataclass
class ValidationResult:
    loss: float
    psnr: float
    ssim: float
    videos: dict[str, np.ndarray] = field(default_factory=dict)  # clip_id -> uint8 [T, H, 2W, 3]


@torch.no_grad()
@torch.no_grad()  # a measurement: no autograd graph (it would hold training-size activations)
def fixed_draw_loss(
    transformer: torch.nn.Module,
    items: list[dict[str, torch.Tensor]],
    cfg: Any,
    *,
    stream: str,
    draws_per_clip: int,
    device: torch.device,
    dtype: torch.dtype,
    autocast: Any,
) -> float:
    """Mean loss over fixed (seeded) draws: comparable between points of a run, unlike the train loss."""
    losses = []
    for index, item in enumerate(items):
        for d in range(draws_per_clip):
            gen = sample_generator(cfg.seed, index * 1000 + d, stream)
            clean = item["latents"].unsqueeze(0)
            draw = draw_sample(
                gen,
                tuple(clean.shape),
                mean=cfg.logit_normal_mean,
                std=cfg.logit_normal_std,
                shift=cfg.sigma_shift,
                cond_frame_probs=cfg.cond_frame_probs,
                prompt_dropout=0.0,
            )
            inputs = build_inputs(
                clean.to(device),
                draw.noise.to(device),
                torch.tensor([draw.sigma], device=device),
                torch.tensor([draw.num_cond_frames]),
                cfg.cond_timestep,
                dtype,
            )
            with autocast():
                pred = predict_velocity(transformer, inputs, item["text"].unsqueeze(0).to(device, dtype))
            losses.append(float(per_sample_loss(pred, inputs)[0]))
    return float(np.mean(losses)) if losses else float("nan")


@torch.no_grad()
def predict_latents(
    transformer: torch.nn.Module,
    scheduler: Any,
    clean: torch.Tensor,
    text: torch.Tensor,
    *,
    steps: int,
    num_cond_frames: int,
    cond_timestep: float,
    seed: int,
    dtype: torch.dtype,
    autocast: Any,
) -> torch.Tensor:
    """The pipeline's loop (guidance 1) from the first ``num_cond_frames`` latent frames of ``clean``."""
    device = clean.device
    scheduler = copy.deepcopy(scheduler)
    scheduler.set_timesteps(steps, device=device)
    gen = sample_generator(seed, 0, "validation-noise")
    latents = torch.randn(clean.shape, generator=gen, dtype=torch.float32).to(device)
    b, _, t, h, w = clean.shape
    cond_indicator = torch.zeros(b, 1, t, 1, 1, device=device)
    cond_indicator[:, :, :num_cond_frames] = 1.0
    cond_mask = cond_indicator.expand(-1, -1, -1, h, w)
    gt_velocity = (latents - clean) * cond_mask
    padding_mask = clean.new_zeros(1, 1, h, w, dtype=dtype)
    for i, t_step in enumerate(scheduler.timesteps):
        sigma = scheduler.sigmas[i].to(device=device, dtype=torch.float32)
        timestep = cond_indicator * cond_timestep + (1 - cond_indicator) * sigma
        hidden = (cond_mask * clean + (1 - cond_mask) * latents).to(dtype)
        with autocast():
            pred = transformer(
                hidden_states=hidden,
                condition_mask=cond_mask.to(dtype),
                timestep=timestep,
                encoder_hidden_states=text,
                padding_mask=padding_mask,
                return_dict=False,
            )[0]
        pred = gt_velocity + pred.float() * (1 - cond_mask)
        latents = scheduler.step(pred, t_step, latents, return_dict=False)[0]
    return latents


@torch.no_grad()
def decode_latents(vae: Any, latents: torch.Tensor, device: torch.device) -> np.ndarray:
    """Normalised latents [1, C, T, h, w] -> uint8 [T, H, W, 3], as the pipeline denormalises them."""
    from .precompute import latents_normalisation

    mean, inv_std = latents_normalisation(vae)
    vae_device = next(vae.parameters()).device
    vae.to(device)
    try:
        x = latents.float() / inv_std.to(device) + mean.to(device)
        video = vae.decode(x.to(vae.dtype), return_dict=False)[0]
    finally:
        vae.to(vae_device)
    video = ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return video.permute(1, 2, 3, 0).cpu().numpy()


def run_validation(
    transformer: torch.nn.Module,
    vae: Any,
    scheduler: Any,
    items: list[dict[str, torch.Tensor]],
    real_frames: list[np.ndarray],
    clip_ids: list[str],
    cfg: Any,
    *,
    device: torch.device,
    dtype: torch.dtype,
    autocast: Any,
) -> ValidationResult:
    """Validation loss on fixed draws + predictions from the first frame, scored against the real clip."""
    from cosmos_ros.evaluation.metrics import finite_mean, psnr_per_frame, ssim_per_frame

    was_training = transformer.training
    transformer.eval()
    try:
        loss = fixed_draw_loss(
            transformer,
            items,
            cfg,
            stream="validation",
            draws_per_clip=2,
            device=device,
            dtype=dtype,
            autocast=autocast,
        )
        psnrs, ssims, videos = [], [], {}
        for item, real, clip_id in zip(items, real_frames, clip_ids, strict=True):
            latents = predict_latents(
                transformer,
                scheduler,
                item["latents"].unsqueeze(0).to(device),
                item["text"].unsqueeze(0).to(device, dtype),
                steps=cfg.validation_steps,
                num_cond_frames=1,
                cond_timestep=cfg.cond_timestep,
                seed=cfg.seed,
                dtype=dtype,
                autocast=autocast,
            )
            predicted = decode_latents(vae, latents, device)[: len(real)]
            # Frame 0 is the given conditioning frame; score the continuation only.
            psnrs.append(finite_mean(psnr_per_frame(real[1:], predicted[1:])))
            ssims.append(finite_mean(ssim_per_frame(real[1:], predicted[1:])))
            videos[clip_id] = np.concatenate([real, predicted], axis=2)
    finally:
        transformer.train(was_training)
    return ValidationResult(loss=loss, psnr=float(np.mean(psnrs)), ssim=float(np.mean(ssims)), videos=videos)


class Validator:
    """Holds the VAE (on the CPU between validations), scheduler and real validation frames.

    ``run`` validates the transformer at a step and writes the scalars, images and side-by-side
    videos (real | predicted) to TensorBoard and ``<output_dir>/validation/step_N/``.
    """

    def __init__(
        self,
        cfg: Any,
        layout: Any,
        data: CachedLatents,
        clips: list[Any],
        device: torch.device,
        dtype: torch.dtype,
        autocast: Any,
    ) -> None:
        from cosmos_ros.model import loading

        from .precompute import PreprocessParams, load_clip_frames

        self.cfg, self.device, self.dtype, self.autocast = cfg, device, dtype, autocast
        self.vae = loading.load_vae(layout, dtype)
        self.scheduler = loading.load_scheduler(layout)
        params = PreprocessParams("", cfg.height, cfg.width, cfg.num_frames, cfg.frame_fit, "", 0, "")
        self.items = [data[i] for i in range(len(data))]
        self.real = [load_clip_frames(c, params) for c in clips]
        self.ids = [c.clip_id for c in clips]

    def run(
        self, transformer: torch.nn.Module, step: int, reporter: RunLogger | None, output_dir: Path
    ) -> dict[str, float]:
        from cosmos_ros.media.video import write_video

        result = run_validation(
            transformer,
            self.vae,
            self.scheduler,
            self.items,
            self.real,
            self.ids,
            self.cfg,
            device=self.device,
            dtype=self.dtype,
            autocast=self.autocast,
        )
        if reporter is not None:
            reporter.log({"val/loss": result.loss, "val/psnr": result.psnr, "val/ssim": result.ssim}, step)
            for clip_id, video in result.videos.items():
                # Real | predicted side by side, as a GIF (add_video needs moviepy.editor, gone in moviepy 2).
                reporter.log_video(f"val/{clip_id}", video, step, self.cfg.fps)
                write_video(
                    output_dir / "validation" / f"step_{step:08d}" / f"{clip_id}.mp4", video, self.cfg.fps
                )
        return {"val_loss": result.loss, "val_psnr": result.psnr, "val_ssim": result.ssim}
