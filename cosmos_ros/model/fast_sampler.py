"""The denoising loop of Cosmos Predict 2.5, without the stock pipeline's waste.

Same math as ``Cosmos2_5_PredictBasePipeline.__call__`` (same noise for a seed, same conditioning,
same scheduler, same guidance formula), read top to bottom like the stock loop, with these exact
changes:

- the conditioning video is encoded only as far as the conditioning latents reach (the Wan VAE
  is causal in time, so latent frame ``k`` depends on input frames ``<= 4k``): the stock call
  encodes all 93 frames, most of them zero padding it then masks away;
- sigmas and timesteps live on the device, and the loop makes no host synchronisation of its
  own (the stock loop calls ``t.cpu().item()`` every step);
- the transformer may be compiled (each block, :func:`compile_transformer`) and adapters are
  merged into the weights (:mod:`cosmos_ros.model.merged_adapters`), which the loop does not see.

And, only when asked for (:class:`Approximation`), steps that trade exactness for speed:
reusing the guidance direction ``cond - uncond`` between unconditioned forwards, and reusing the
previous step's velocity on some steps in the middle of the schedule. Both are reported as
approximate in the prediction's metadata.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

StepHook = Callable[[int, int], None]


class SamplerCancelled(Exception):
    """The ``should_stop`` callback asked the loop to stop between two steps."""


@dataclass(frozen=True)
class Approximation:
    """Opt-in speed-ups whose output differs from the exact path (reported, never silent).

    ``guidance_every``: the unconditioned forward runs on every N-th computed step; in between,
    the last guidance direction (cond - uncond) is reused. ``reuse_velocity``: on every other
    step inside ``[reuse_start, reuse_end)`` (fractions of the schedule) no forward runs at all and
    the previous step's velocity is reused.
    """

    guidance_every: int = 3
    reuse_velocity: bool = True
    reuse_start: float = 0.25
    reuse_end: float = 0.9

    def computes(self, step: int, total: int) -> bool:
        if not self.reuse_velocity:
            return True
        start, end = int(self.reuse_start * total), int(self.reuse_end * total)
        return not (start <= step < end and (step - start) % 2 == 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The named approximate mode the presets and the CLI offer.
APPROX_FAST = Approximation()


@dataclass
class SamplerInputs:
    """Everything the loop needs, prepared once per request."""

    latents: Any
    cond_latent: Any
    cond_mask: Any
    cond_indicator: Any
    prompt_embeds: Any
    negative_prompt_embeds: Any | None


def conditioning_video(frames: Any, num_latent_conditional_frames: int = 1) -> tuple[Any, int]:
    """Fitted uint8 frames [T, H, W, 3] -> (video [1, 3, T', H, W] in [-1, 1], frames used).

    As the stock call: one latent frame conditions on the last frame (image-to-world); two on the
    last ``4 * (2 - 1) + 1 = 5`` frames (video-to-world).
    """
    import numpy as np
    import torch

    keep = 4 * (num_latent_conditional_frames - 1) + 1
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if len(frames) < keep:
        raise ValueError(
            f"{num_latent_conditional_frames} conditioning latent frame(s) need at least {keep} frames, "
            f"got {len(frames)}"
        )
    clip = torch.from_numpy(np.ascontiguousarray(frames[-keep:]))
    return clip.permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5 - 1.0, keep


def prepare_inputs(
    pipe: Any,
    video: Any,
    frames_in: int,
    *,
    num_frames: int,
    height: int,
    width: int,
    prompt_embeds: Any,
    negative_prompt_embeds: Any | None,
    generator: Any,
) -> SamplerInputs:
    """Encode the conditioning frames and draw the noise exactly as the stock call does."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    device = pipe._execution_device
    vae = pipe.vae
    t_latent = (num_frames - 1) // pipe.vae_scale_factor_temporal + 1
    shape = (
        1,
        pipe.transformer.config.in_channels - 1,
        t_latent,
        height // pipe.vae_scale_factor_spatial,
        width // pipe.vae_scale_factor_spatial,
    )
    encoded = vae.encode(video.to(device=device, dtype=vae.dtype)).latent_dist.mode().to(torch.float32)
    mean = pipe.latents_mean.to(device=device, dtype=torch.float32)
    inv_std = pipe.latents_std.to(device=device, dtype=torch.float32)
    encoded = (encoded - mean) * inv_std
    cond_latent = torch.zeros(shape, device=device, dtype=torch.float32)
    cond_latent[:, :, : encoded.shape[2]] = encoded
    latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
    n_cond = (frames_in - 1) // pipe.vae_scale_factor_temporal + 1
    cond_indicator, cond_mask = pipe.create_condition_mask(shape, device, torch.float32, n_cond)
    return SamplerInputs(
        latents, cond_latent, cond_mask, cond_indicator, prompt_embeds, negative_prompt_embeds
    )


def denoise(
    pipe: Any,
    inputs: SamplerInputs,
    *,
    steps: int,
    guidance: float,
    conditional_frame_timestep: float = 1e-4,
    approximation: Approximation | None = None,
    on_step: StepHook | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch_guidance: bool = False,
) -> Any:
    """Run the denoising loop; returns the final latents (float32, normalised like the stock call).

    ``batch_guidance`` runs the prompted and the negative forward as one batch of two (same
    math; it pays where one forward does not fill the GPU).
    """
    import torch

    transformer, scheduler = pipe.transformer, pipe.scheduler
    device, tdtype = inputs.latents.device, transformer.dtype
    latents = inputs.latents
    cond_mask = inputs.cond_mask.to(tdtype)
    keep_cond = cond_mask * inputs.cond_latent
    free = 1 - cond_mask
    gt_velocity = (latents - inputs.cond_latent) * cond_mask
    cond_indicator = inputs.cond_indicator
    padding_mask = latents.new_zeros(
        1,
        1,
        latents.shape[-2] * pipe.vae_scale_factor_spatial,
        latents.shape[-1] * pipe.vae_scale_factor_spatial,
        dtype=tdtype,
    )
    do_cfg = guidance > 1.0
    scheduler.set_timesteps(steps, device=device)
    timesteps = scheduler.timesteps
    sigmas = scheduler.sigmas.to(device=device, dtype=torch.float32)

    def velocity(in_latents: Any, in_timestep: Any, embeds: Any) -> Any:
        batch = embeds.shape[0]
        out = transformer(
            hidden_states=in_latents.expand(batch, *in_latents.shape[1:]),
            condition_mask=cond_mask.expand(batch, *cond_mask.shape[1:]),
            timestep=in_timestep.expand(batch, *in_timestep.shape[1:]),
            encoder_hidden_states=embeds,
            padding_mask=padding_mask,
            return_dict=False,
        )[0]
        return gt_velocity + out * free

    both_embeds = None
    if batch_guidance and guidance > 1.0:
        both_embeds = torch.cat([inputs.prompt_embeds, inputs.negative_prompt_embeds])

    noise_pred = guide = None
    computed = 0
    for i, t in enumerate(timesteps):
        if should_stop is not None and should_stop():
            raise SamplerCancelled(f"cancelled before step {i + 1} of {len(timesteps)}")
        if noise_pred is None or approximation is None or approximation.computes(i, len(timesteps)):
            sigma_t = sigmas[i].view(1, 1, 1, 1, 1)
            in_timestep = cond_indicator * conditional_frame_timestep + (1 - cond_indicator) * sigma_t
            in_latents = (keep_cond + free * latents).to(tdtype)
            fresh = do_cfg and (
                approximation is None or guide is None or computed % approximation.guidance_every == 0
            )
            if fresh and both_embeds is not None:
                pair = velocity(in_latents, in_timestep, both_embeds)
                noise_pred, guide = pair[:1], pair[:1] - pair[1:]
            else:
                noise_pred = velocity(in_latents, in_timestep, inputs.prompt_embeds)
                if fresh:
                    guide = noise_pred - velocity(in_latents, in_timestep, inputs.negative_prompt_embeds)
            if do_cfg:
                noise_pred = noise_pred + guidance * guide
            computed += 1
        latents = scheduler.step(noise_pred, t, latents, return_dict=False)[0]
        if on_step is not None:
            on_step(i + 1, len(timesteps))
    return latents


def decode(pipe: Any, latents: Any, num_frames: int) -> Any:
    """Latents -> uint8 frames [T, H, W, 3], as the stock call's ``output_type="np"`` path.

    The [-1, 1] -> uint8 conversion runs on the device with the same float32 arithmetic as
    ``VideoProcessor.postprocess_video`` + :func:`to_uint8`, so only bytes cross to the host.
    Raises ``FloatingPointError`` where the decoded video holds NaN or inf.
    """
    import torch

    mean = pipe.latents_mean.to(latents.device, latents.dtype)
    inv_std = pipe.latents_std.to(latents.device, latents.dtype)
    video = pipe.vae.decode((latents / inv_std + mean).to(pipe.vae.dtype), return_dict=False)[0]
    video = pipe._match_num_frames(video, num_frames)[0]  # [C, T, H, W]
    if not bool(torch.isfinite(video).all()):  # clamp and uint8 would turn NaN into a black video
        raise FloatingPointError("the VAE decoded non-finite values (NaN or inf)")
    unit = (video.float() / 2 + 0.5).clamp(0, 1)
    frames = torch.round(unit * 255.0).to(torch.uint8).permute(1, 2, 3, 0)
    return frames.cpu().numpy()


def to_uint8(frames: Any) -> Any:
    """The pipeline's float frames in [0, 1] -> uint8 [T, H, W, 3]."""
    import numpy as np

    return np.clip(np.rint(np.asarray(frames) * 255.0), 0, 255).astype(np.uint8)


#: Where compiled kernels are kept unless a folder is given (see :func:`set_compile_cache`).
DEFAULT_COMPILE_CACHE = Path("~/.cache/cosmos_ros/torch_compile")


def compile_transformer(
    transformer: Any, *, cache_dir: str | os.PathLike[str] | None = None, mode: str | None = None
) -> Path:
    """Compile each transformer block in place (regional compilation).

    The 28 blocks share one compiled graph, so compiling takes seconds rather than the ~2 minutes
    of a whole-model compile, and runs as fast. ``cache_dir`` (default: see
    :func:`set_compile_cache`) holds Inductor's and Triton's on-disk caches, so a
    restarted node reuses the compiled kernels instead of paying for them again. Returns the
    cache folder in use.
    """
    root = set_compile_cache(cache_dir)
    for block in transformer.transformer_blocks:
        block.compile(fullgraph=False, dynamic=False, mode=mode)
    return root


def set_compile_cache(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Point PyTorch's compile caches at a persistent folder (kept across restarts); returns it.

    Importing ``torch._dynamo`` (diffusers does) already sets ``TORCHINDUCTOR_CACHE_DIR`` to
    PyTorch's default under the temporary folder, which a reboot empties, so the variables are
    set here, not defaulted. With ``cache_dir`` None a folder the user chose through
    ``TORCHINDUCTOR_CACHE_DIR`` (anything but PyTorch's default) is kept, else
    ``~/.cache/cosmos_ros/torch_compile`` is used.
    """
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if cache_dir is None and current and os.path.abspath(current) != os.path.abspath(default_cache_dir()):
        return Path(current)
    root = Path(cache_dir or DEFAULT_COMPILE_CACHE).expanduser().absolute()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root / "inductor")
    if cache_dir is None:
        os.environ.setdefault("TRITON_CACHE_DIR", str(root / "triton"))
    else:
        os.environ["TRITON_CACHE_DIR"] = str(root / "triton")
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    return root
