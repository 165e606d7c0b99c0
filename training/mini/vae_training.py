"""Train cosmos-mini's Wan VAE on the procedural world: single frames first, then clips mixed in.

Why two phases: the causal Wan VAE encodes a clip's first frame on its own, so single frames
teach the spatial path quickly (tens of dB in minutes), and clips then train the temporal path
without undoing it (trained on clips from the start it stalls near 18 dB). Every temporal kernel
starts as "this frame only" (:func:`inflate_from_frames`, Wan's 2D -> 3D inflation), so the
frame phase trains each latent frame's path; without it two GPU builds stalled at the still-frame
PSNR (20.3 / 20.7 dB) with a decoder that ignored every latent frame but the first.

The loss is MSE + 0.5 L1 on pixels in [-1, 1], the MSE of frame-to-frame differences on clips
(``motion_weight``), and a small penalty on the latent means (keeps their scale near 1). The
latent statistics the pipeline normalises with (``latents_mean`` /
``latents_std`` in the VAE config) are measured on training clips at the end.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cosmos_ros.progress import ProgressCallback, Stopwatch

log = logging.getLogger(__name__)


@dataclass
class VaeTrainSettings:
    """Steps, batch sizes and learning rate of the two phases (defaults: a GPU build)."""

    frame_steps: int = 2000
    clip_steps: int = 4000
    frame_batch: int = 64
    clip_batch: int = 8
    learning_rate: float = 1e-3
    latent_penalty: float = 1e-4
    #: Weight of the frame-to-frame difference loss on clips (0 turns it off); see module doc.
    motion_weight: float = 1.0
    eval_every: int = 500
    checkpoint_every: int = 1000
    #: Stop (and schedule the learning rate and phases) by wall time instead, when set.
    max_seconds: float | None = None
    #: Run the training forward/backward under bfloat16 autocast on CUDA (weights, optimizer and
    #: every held-out measurement stay float32). Off: the builds measured so far ran float32, and
    #: a bf16 build's start of the clip phase was never compared with theirs. Ignored on the CPU.
    bf16: bool = False
    seed: int = 0


def to_input(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``[B, T, H, W, 3]`` -> ``[B, 3, T, H, W]`` in [-1, 1] (the pipeline's scaling)."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return video.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def reconstruct(vae: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction, latent mean) of ``x`` through the VAE's deterministic path."""
    z = vae.encode(x).latent_dist.mode()
    return vae.decode(z).sample, z


def motion_loss(rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """MSE of the frame-to-frame differences ``[B, C, T, H, W]``: zero only if the motion is decoded.

    Why: a decoder that repeats the first frame loses little pixel MSE on a mostly static scene,
    and once it learns to ignore the later latent frames their encoder gets no gradient; this term
    charges for every moving pixel the reconstruction misses.
    """
    return torch.nn.functional.mse_loss(rec[:, :, 1:] - rec[:, :, :-1], x[:, :, 1:] - x[:, :, :-1])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two [-1, 1] tensors, measured on the uint8 scale like the evaluation."""
    mse = torch.mean(((a.clamp(-1, 1) - b.clamp(-1, 1)) * 127.5) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@torch.no_grad()
def held_out_psnr(vae: Any, clips: np.ndarray, device: torch.device, batch: int = 8) -> float:
    """Mean PSNR of reconstructed held-out clips ``[N, T, H, W, 3]``."""
    values = []
    for i in range(0, len(clips), batch):
        x = to_input(clips[i : i + batch], device)
        rec, _ = reconstruct(vae, x)
        values.append(psnr(rec, x))
    return float(np.mean(values))


def train_vae(
    vae: Any,
    episodes: np.ndarray,
    held_out: np.ndarray,
    clip_frames: int,
    settings: VaeTrainSettings,
    device: torch.device,
    work_dir: Path,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Train ``vae`` in place on ``episodes`` ``[N, T, H, W, 3]``; returns the training record.

    ``held_out``: clips ``[M, clip_frames, H, W, 3]`` never trained on, measured every
    ``eval_every`` steps. Continues from ``work_dir/vae_checkpoint.pt`` when one exists.
    """
    vae.to(device).train()
    optimizer = torch.optim.AdamW(
        vae.parameters(), lr=settings.learning_rate, weight_decay=0.0, fused=device.type == "cuda"
    )
    total = settings.frame_steps + settings.clip_steps
    record: dict[str, Any] = {"settings": asdict(settings), "curve": []}
    start = _resume(work_dir, vae, optimizer, record)
    rng = np.random.default_rng([settings.seed, start])
    n, t_total = episodes.shape[:2]
    watch = Stopwatch(progress, "train VAE", bar_total(total, settings.max_seconds))
    started = time.monotonic()
    frame_share = settings.frame_steps / total
    step = start
    while True:
        progress = run_progress(step, total, started, settings.max_seconds)
        if progress >= 1.0:
            break
        lr_scale = min(1.0, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = settings.learning_rate * max(lr_scale, 0.02)
        in_frame_phase = progress < frame_share
        if in_frame_phase or step % 4 == 0:  # after the frame phase: 3 clip steps in 4
            picks = rng.integers(0, n, settings.frame_batch)
            frames = rng.integers(0, t_total, settings.frame_batch)
            batch = episodes[picks, frames][:, None]  # [B, 1, H, W, 3]
        else:
            picks = rng.integers(0, n, settings.clip_batch)
            starts = rng.integers(0, t_total - clip_frames + 1, settings.clip_batch)
            batch = np.stack([episodes[p, s : s + clip_frames] for p, s in zip(picks, starts, strict=True)])
        x = to_input(batch, device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=settings.bf16 and device.type == "cuda"):
            rec, z = reconstruct(vae, x)
        rec, z = rec.float(), z.float()
        loss = torch.nn.functional.mse_loss(rec, x) + 0.5 * torch.nn.functional.l1_loss(rec, x)
        loss = loss + settings.latent_penalty * z.pow(2).mean()
        if x.shape[2] > 1 and settings.motion_weight > 0:
            loss = loss + settings.motion_weight * motion_loss(rec, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        done = step = step + 1
        finished = run_progress(done, total, started, settings.max_seconds) >= 1.0
        if done % settings.eval_every == 0 or finished:
            vae.eval()
            value = held_out_psnr(vae, held_out, device)
            effect = later_latents_effect(vae, held_out[:4], device)  # a first-frame decoder shows early
            vae.train()
            seconds = round(time.monotonic() - started, 1)
            point = {"step": done, "loss": loss.item(), "held_out_clip_psnr": value,
                     "later_latents_effect_db": effect, "seconds": seconds}  # fmt: skip
            record["curve"].append(point)
            log.info("VAE step %d: loss %.5f, held-out clip PSNR %.2f dB, later-latents effect %.1f dB "
                     "(above ~40: decoding from the first latent frame)", done, loss.item(), value,
                     effect)  # fmt: skip
        if done % settings.checkpoint_every == 0 and not finished:
            _checkpoint(work_dir, vae, optimizer, record, done)
        phase = "frames" if in_frame_phase else "clips + frames"
        where = bar_position(done, total, started, settings.max_seconds)
        watch.report(where, phase, loss=loss.item(), steps=done)
    record["steps_done"] = step
    vae.eval()
    set_latent_statistics(vae, episodes, clip_frames, device)
    record["held_out_clip_psnr"] = record["curve"][-1]["held_out_clip_psnr"] if record["curve"] else None
    record["later_latents_effect_db"] = later_latents_effect(vae, held_out[:4], device)
    return record


@torch.no_grad()
def inflate_from_frames(vae: Any) -> Any:
    """Start every temporal kernel as "this frame only", as Wan inflates its 2D VAE to 3D.

    Causal 3D convolutions keep only their newest time slice; the resampling time convolutions
    become identities (the decoder's doubles a frame, the encoder's keeps the newest). The VAE
    then codes each latent frame as one picture, so the single-frame phase trains every latent
    frame's path and the clip phase starts from a decoder that already follows the later latent
    frames. With PyTorch's default init the decoder's later frames depend on the first latent
    frame 10-40x more than on their own, and training settles on repeating the first frame.
    """
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, WanResample

    for module in vae.modules():
        if isinstance(module, WanCausalConv3d) and module.kernel_size[0] > 1:
            module.weight[:, :, :-1] = 0
    for module in vae.modules():
        if isinstance(module, WanResample) and hasattr(module, "time_conv"):
            conv = module.time_conv
            out_channels, in_channels = conv.weight.shape[:2]
            eye = torch.eye(in_channels, dtype=conv.weight.dtype)
            conv.weight.zero_()
            for first in range(0, out_channels, in_channels):  # 2 copies (upsample) or 1 (downsample)
                conv.weight[first : first + in_channels, :, -1, 0, 0] = eye
            conv.bias.zero_()
    return vae


@torch.no_grad()
def later_latents_effect(vae: Any, clips: np.ndarray, device: torch.device) -> float:
    """PSNR (dB) between decodes of a clip's latents with and without noise on latent frames 1..

    Why: a VAE can score near the still-frame PSNR by decoding every frame from the first latent
    frame (the causal cache) and ignoring the rest; then no world model can show motion through
    it. A decoder that uses the later latents changes a lot (low dB); one that ignores them does
    not (above ~40 dB). Seen in two GPU builds (20.7 dB clip PSNR, 55 dB here).
    """
    generator = torch.Generator().manual_seed(0)
    x = to_input(clips, device)
    z = vae.encode(x).latent_dist.mode()
    noisy = z.clone()
    noise = torch.randn(z[:, :, 1:].shape, generator=generator).to(device) * z.std()
    noisy[:, :, 1:] += noise
    return psnr(vae.decode(noisy).sample, vae.decode(z).sample)


@torch.no_grad()
def set_latent_statistics(vae: Any, episodes: np.ndarray, clip_frames: int, device: torch.device) -> None:
    """Write per-channel latent mean/std (over training clips) into the VAE config."""
    latents = []
    for i in range(0, min(len(episodes), 64), 8):
        x = to_input(episodes[i : i + 8, :clip_frames], device)
        latents.append(vae.encode(x).latent_dist.mode().float())
    z = torch.cat(latents)  # [B, C, T, H, W]
    mean = z.mean(dim=(0, 2, 3, 4))
    std = z.std(dim=(0, 2, 3, 4)).clamp_min(1e-3)
    vae.register_to_config(latents_mean=[round(float(v), 6) for v in mean],
                           latents_std=[round(float(v), 6) for v in std])  # fmt: skip


def run_progress(step: int, total: int, started: float, max_seconds: float | None) -> float:
    """How far through the run: by steps, or by wall time when ``max_seconds`` is set."""
    if max_seconds is None:
        return step / total
    return (time.monotonic() - started) / max_seconds


def bar_total(steps: int, max_seconds: float | None) -> int:
    """The progress bar's length: steps, or seconds when the run is timed (``max_seconds``)."""
    return steps if max_seconds is None else round(max_seconds)


def bar_position(step: int, steps: int, started: float, max_seconds: float | None) -> int:
    """Where the progress bar stands, in the unit :func:`bar_total` chose."""
    if max_seconds is None:
        return min(step, steps)
    return min(round(time.monotonic() - started), round(max_seconds))


def _checkpoint(work_dir: Path, vae: Any, optimizer: Any, record: dict[str, Any], step: int) -> None:
    from cosmos_ros.atomic import atomic_path

    with atomic_path(work_dir / "vae_checkpoint.pt") as tmp:
        torch.save({"step": step, "vae": vae.state_dict(), "optimizer": optimizer.state_dict(),
                    "record": json.dumps(record)}, tmp)  # fmt: skip


def _resume(work_dir: Path, vae: Any, optimizer: Any, record: dict[str, Any]) -> int:
    path = work_dir / "vae_checkpoint.pt"
    if not path.is_file():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    vae.load_state_dict(state["vae"])
    optimizer.load_state_dict(state["optimizer"])
    record.update(json.loads(state["record"]))
    log.info("VAE: continuing from step %d (%s)", state["step"], path)
    return int(state["step"])
