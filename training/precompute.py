"""Precompute stage: VAE latents and projected text embeddings, once per clip, cached on disk.

The recipe runs the 7B text encoder and the VAE on every step; here each clip is encoded once
and training reads small tensors, so neither model occupies the GPU while the transformer trains.

Cache layout: ``<cache_dir>/<key>/<clip entry>.safetensors`` where ``key`` hashes the base model
fingerprint and every preprocessing parameter (resolution, frames, frame fitting, prompt prefix,
sequence length, format version): changing any of them selects another folder, so a stale entry
is never read. Each entry's name also hashes the video's bytes and the prompt, so an edited clip is
re-encoded. Entries are written atomically; an interrupted precompute resumes where it stopped.

Text is stored *after* the transformer's frozen ``crossattn_proj`` (100352 -> 1024 channels):
100x smaller on disk and in memory, and exactly what the projection would compute each step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from cosmos_ros.atomic import atomic_path
from cosmos_ros.progress import ProgressCallback, Stopwatch

from .data import ClipSource

log = logging.getLogger(__name__)

#: Bumped whenever what an entry holds changes meaning.
CACHE_FORMAT = 1
EMPTY_PROMPT_NAME = "empty_prompt.safetensors"


@dataclass(frozen=True)
class PreprocessParams:
    """Everything that decides what a cache entry holds."""

    base_fingerprint: str
    height: int
    width: int
    num_frames: int
    frame_fit: str
    prompt_prefix: str
    max_sequence_length: int
    compute_dtype: str

    def key(self) -> str:
        material = json.dumps({"format": CACHE_FORMAT, **self.__dict__}, sort_keys=True)
        return hashlib.sha256(material.encode()).hexdigest()[:24]


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "cosmos_ros" / "train_cache"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entry_name(clip: ClipSource, full_prompt: str) -> str:
    digest = hashlib.sha256(f"{_file_sha256(clip.video)}\0{full_prompt}".encode()).hexdigest()[:16]
    safe_id = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in clip.clip_id)
    return f"{safe_id}-{digest}.safetensors"


def load_clip_frames(clip: ClipSource, params: PreprocessParams) -> Any:
    """The clip's first ``num_frames`` frames fitted to the training size: uint8 [T, H, W, 3]."""
    import numpy as np

    from cosmos_ros.media.frame_fit import fit_frame
    from cosmos_ros.media.video import read_video

    frames, _fps = read_video(clip.video)
    if len(frames) < params.num_frames:
        raise ValueError(
            f"{clip.video}: {len(frames)} frames, fewer than num_frames={params.num_frames}; "
            "lower num_frames (4k+1) or drop the clip"
        )
    frames = frames[: params.num_frames]
    return np.stack([fit_frame(f, params.height, params.width, mode=params.frame_fit) for f in frames])


def frames_to_vae_input(frames: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> [1, 3, T, H, W] in [-1, 1] (the pipeline's VideoProcessor scaling)."""
    video = torch.from_numpy(frames).to(device).permute(3, 0, 1, 2).unsqueeze(0)
    return (video.float() / 127.5 - 1.0).to(dtype)


def latents_normalisation(vae: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, 1/std) of shape [1, C, 1, 1, 1], as ``Cosmos2_5_PredictBasePipeline.__init__`` builds them."""
    z = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1).float()
    inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1).float()
    return mean, inv_std


@torch.no_grad()
def encode_video(vae: Any, frames: Any) -> torch.Tensor:
    """Normalised latents [C, T', H/8, W/8] (float32) exactly as the pipeline conditions on them."""
    from diffusers.pipelines.cosmos.pipeline_cosmos2_5_predict import retrieve_latents

    device = next(vae.parameters()).device
    video = frames_to_vae_input(frames, device, vae.dtype)
    latents = retrieve_latents(vae.encode(video), sample_mode="argmax").float()
    mean, inv_std = latents_normalisation(vae)
    return ((latents - mean.to(device)) * inv_std.to(device))[0].cpu()


@torch.no_grad()
def encode_prompt(
    tokenizer: Any, text_encoder: Any, projection: torch.nn.Module, prompt: str, max_sequence_length: int
) -> torch.Tensor:
    """Projected prompt embedding [L, D] via the stock pipeline's own ``_get_prompt_embeds``."""
    from diffusers import Cosmos2_5_PredictBasePipeline

    device = next(text_encoder.parameters()).device
    holder = SimpleNamespace(tokenizer=tokenizer, text_encoder=text_encoder)
    raw = Cosmos2_5_PredictBasePipeline._get_prompt_embeds(
        holder,
        prompt=[prompt],
        max_sequence_length=max_sequence_length,
        device=device,
        dtype=text_encoder.dtype,
    )
    proj_param = next(projection.parameters())
    return projection(raw.to(proj_param.device, proj_param.dtype))[0].cpu()


@dataclass
class CacheResult:
    folder: Path
    train_files: list[Path]
    val_files: list[Path]
    empty_text_file: Path
    encoded: int
    reused: int


def precompute(
    base_model: str | os.PathLike[str],
    params: PreprocessParams,
    cache_dir: str | os.PathLike[str],
    train: list[ClipSource],
    val: list[ClipSource],
    *,
    projection: torch.nn.Module,
    device: torch.device,
    dtype: torch.dtype,
    progress: ProgressCallback | None = None,
) -> CacheResult:
    """Encode every clip missing from the cache; load the VAE and text encoder only if needed."""
    from safetensors.torch import save_file

    folder = Path(cache_dir) / params.key()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.json").write_text(json.dumps(params.__dict__, indent=2, sort_keys=True) + "\n")
    clips = [*train, *val]
    names = [entry_name(c, params.prompt_prefix + c.prompt) for c in clips]
    empty_file = folder / EMPTY_PROMPT_NAME
    todo = [(c, n) for c, n in zip(clips, names, strict=True) if not (folder / n).is_file()]
    encoded = 0
    if todo or not empty_file.is_file():
        from cosmos_ros.model import loading

        layout = loading.validate_model_dir(base_model)
        vae = loading.load_vae(layout, dtype).to(device)
        tokenizer = loading.load_tokenizer(layout)
        text_encoder = loading.load_text_encoder(layout, dtype).to(device)
        proj_device = next(projection.parameters()).device
        projection.to(device)
        try:
            watch = Stopwatch(progress, "precompute", len(todo))
            if not empty_file.is_file():
                text = encode_prompt(tokenizer, text_encoder, projection, "", params.max_sequence_length)
                with atomic_path(empty_file) as tmp:
                    save_file({"text": text.contiguous()}, str(tmp))
            for i, (clip, name) in enumerate(todo):
                latents = encode_video(vae, load_clip_frames(clip, params))
                text = encode_prompt(
                    tokenizer,
                    text_encoder,
                    projection,
                    params.prompt_prefix + clip.prompt,
                    params.max_sequence_length,
                )
                with atomic_path(folder / name) as tmp:
                    save_file(
                        {"latents": latents.contiguous(), "text": text.contiguous()},
                        str(tmp),
                        metadata={"clip_id": clip.clip_id, "video": str(clip.video.name)},
                    )
                encoded += 1
                watch.report(i + 1, clip.clip_id)
        finally:
            projection.to(proj_device)
            del vae, text_encoder
            if device.type == "cuda":
                torch.cuda.empty_cache()
    log.info("precompute cache %s: %d encoded, %d reused", folder, encoded, len(clips) - encoded)
    paths = [folder / n for n in names]
    return CacheResult(
        folder, paths[: len(train)], paths[len(train) :], empty_file, encoded, len(clips) - encoded
    )
