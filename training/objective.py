"""The recipe's rectified-flow objective, built exactly the way the stock pipeline feeds the model.

``Cosmos2_5_PredictBasePipeline.__call__`` (diffusers 0.42) gives the transformer
``cond_mask * cond_latent + (1 - cond_mask) * x_t`` as input, ``cond_mask`` as the
``condition_mask`` channel, a zero ``padding_mask``, and a per-frame timestep of shape
``[B, 1, T, 1, 1]`` equal to sigma (in [0, 1]) on generated frames and ``conditional_frame_timestep``
(1e-4) on the conditioning frames; its velocity target is ``noise - clean``. Training feeds the
model the same tensors, so an adapter learnt here helps the real pipeline.

All randomness of one training sample (sigma, noise, number of conditioning frames, prompt
dropout) comes from a generator seeded by (run seed, sample key): the same sample gets the same
draws whatever the process layout, batch split or resume point, which is what makes resumed and
data-parallel runs reproduce single-process ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def sample_generator(seed: int, key: int, stream: str = "train") -> torch.Generator:
    """A CPU generator for one sample, independent of every other sample's."""
    digest = hashlib.sha256(f"{stream}:{seed}:{key}".encode()).digest()
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def shifted_logit_normal(u: torch.Tensor, shift: float) -> torch.Tensor:
    """Map a normal draw to sigma: sigmoid, then the flow shift s' = shift*s / (1 + (shift-1)*s)."""
    s = torch.sigmoid(u)
    return shift * s / (1.0 + (shift - 1.0) * s)


@dataclass
class SampleDraws:
    """The random choices for one training sample."""

    sigma: float
    num_cond_frames: int
    drop_prompt: bool
    noise: torch.Tensor  # same shape as the clean latents of the sample, float32, CPU


def draw_sample(
    generator: torch.Generator,
    latent_shape: tuple[int, ...],
    *,
    mean: float,
    std: float,
    shift: float,
    cond_frame_probs: tuple[float, float] | list[float],
    prompt_dropout: float,
) -> SampleDraws:
    """Draw sigma, conditioning-frame count, prompt dropout and noise, in a fixed order."""
    u = torch.randn((), generator=generator) * std + mean
    sigma = float(shifted_logit_normal(u, shift))
    pick = float(torch.rand((), generator=generator))
    num_cond = 1 if pick < cond_frame_probs[0] else 2
    drop = float(torch.rand((), generator=generator)) < prompt_dropout
    noise = torch.randn(latent_shape, generator=generator, dtype=torch.float32)
    return SampleDraws(sigma=sigma, num_cond_frames=num_cond, drop_prompt=drop, noise=noise)


@dataclass
class ModelInputs:
    """What the transformer is called with, plus the target and the loss mask."""

    hidden_states: torch.Tensor  # [B, C, T, H, W]
    condition_mask: torch.Tensor  # [B, 1, T, H, W]
    timestep: torch.Tensor  # [B, 1, T, 1, 1] float32
    padding_mask: torch.Tensor  # [1, 1, H, W]
    target: torch.Tensor  # [B, C, T, H, W] float32: noise - clean
    loss_mask: torch.Tensor  # [B, 1, T, 1, 1] float32: 1 on generated frames


def build_inputs(
    clean: torch.Tensor,
    noise: torch.Tensor,
    sigma: torch.Tensor,
    num_cond_frames: torch.Tensor,
    cond_timestep: float,
    dtype: torch.dtype,
) -> ModelInputs:
    """Noise ``clean`` latents to ``sigma`` and keep the first 1 or 2 latent frames clean.

    ``clean``/``noise``: [B, C, T, H, W]; ``sigma``: [B]; ``num_cond_frames``: [B] ints.
    """
    b, _, t, h, w = clean.shape
    clean = clean.float()
    noise = noise.float()
    s = sigma.float().view(b, 1, 1, 1, 1)
    x_t = s * noise + (1.0 - s) * clean
    frame = torch.arange(t, device=clean.device).view(1, 1, t, 1, 1)
    cond_indicator = (frame < num_cond_frames.to(clean.device).view(b, 1, 1, 1, 1)).float()
    cond_mask = cond_indicator.expand(-1, -1, -1, h, w)
    hidden = cond_mask * clean + (1.0 - cond_mask) * x_t
    timestep = cond_indicator * cond_timestep + (1.0 - cond_indicator) * s
    return ModelInputs(
        hidden_states=hidden.to(dtype),
        condition_mask=cond_mask.to(dtype),
        timestep=timestep,
        padding_mask=clean.new_zeros(1, 1, h, w, dtype=dtype),
        target=noise - clean,
        loss_mask=1.0 - cond_indicator,
    )


def predict_velocity(transformer: torch.nn.Module, inputs: ModelInputs, text: torch.Tensor) -> torch.Tensor:
    """One transformer forward with the pipeline's argument layout."""
    return transformer(
        hidden_states=inputs.hidden_states,
        condition_mask=inputs.condition_mask,
        timestep=inputs.timestep,
        encoder_hidden_states=text,
        padding_mask=inputs.padding_mask,
        return_dict=False,
    )[0]


def per_sample_loss(prediction: torch.Tensor, inputs: ModelInputs) -> torch.Tensor:
    """Mean squared velocity error over the generated (non-conditioning) frames, one value per sample.

    Averaging per sample first (then over the batch) makes the loss independent of how a global
    batch is split across processes, even though samples differ in their conditioning frames.
    """
    err = F.mse_loss(prediction.float(), inputs.target, reduction="none")
    mask = inputs.loss_mask.expand_as(err)
    return (err * mask).flatten(1).sum(1) / mask.flatten(1).sum(1)
