"""What one prediction request runs with: preset + overrides, checked before any model work.

Why a module of its own: the CLI and the evaluation check a request against the model folder
before the minute it takes to load the model, and the runtime checks every request again; a bad
value must be refused by name, never reach the transformer (a shape error deep inside it) or
silently change the result (``guidance=nan`` turned classifier-free guidance off).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_ros.media.frame_fit import FIT_MODES
from cosmos_ros.model.presets import Preset, presets_for, read_model_hint, resolve_preset


@dataclass(frozen=True)
class SizeLimits:
    """The largest video the transformer's position embeddings cover (its config's ``max_size``)."""

    max_frames: int
    max_height: int
    max_width: int


def model_limits(model_dir: str | os.PathLike[str]) -> SizeLimits | None:
    """Limits read from ``transformer/config.json`` and ``vae/config.json``; None where they are absent.

    Latent frames = (frames - 1) / temporal factor + 1 and latent pixels = pixels / spatial factor
    must fit ``max_size`` (frames, height, width) in patches of ``patch_size``.
    """
    root = Path(model_dir)
    transformer, vae = _read_config(root / "transformer"), _read_config(root / "vae")
    if transformer is None:
        return None
    try:
        max_t, max_h, max_w = (int(v) for v in transformer.get("max_size", (128, 240, 240)))
        pt, ph, pw = (int(v) for v in transformer.get("patch_size", (1, 2, 2)))
        downsample = list((vae or {}).get("temperal_downsample") or [False, True, True])
        temporal = int((vae or {}).get("scale_factor_temporal") or 2 ** sum(bool(d) for d in downsample))
        spatial = int((vae or {}).get("scale_factor_spatial") or 2 ** len(downsample))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{root / 'transformer' / 'config.json'}: max_size and patch_size must be three integers "
            f"each ({exc})"
        ) from exc
    latent_frames = (max_t // pt) * pt
    return SizeLimits(
        max_frames=(latent_frames - 1) * temporal + 1,
        max_height=(max_h // ph) * ph * spatial // 16 * 16,
        max_width=(max_w // pw) * pw * spatial // 16 * 16,
    )


def _read_config(folder: Path) -> dict[str, Any] | None:
    from cosmos_ros.model.loading import read_json_object

    path = folder / "config.json"
    return read_json_object(path) if path.is_file() else None


def check_settings(
    model_dir: str | os.PathLike[str],
    preset: str = "full",
    *,
    num_frames: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    height: int | None = None,
    width: int | None = None,
    fit: str = "crop",
    seed: int = 0,
) -> dict[str, Any]:
    """The settings a request would run with, checked without loading the model.

    Why: loading the 2B model takes a minute; a bad preset or frame count should fail before it.
    Raises ValueError naming the value at fault and what is accepted.
    """
    chosen = resolve_preset(preset, presets_for(read_model_hint(model_dir)))
    limits = model_limits(model_dir)
    return request_settings(chosen, num_frames, steps, guidance, height, width, fit, seed, limits=limits)


def chosen_name(table: dict[str, Preset], preset: Preset) -> str:
    return next((name for name, p in table.items() if p is preset), "custom")


def request_settings(
    preset: Preset,
    num_frames: Any,
    steps: Any,
    guidance: Any,
    height: Any,
    width: Any,
    fit: str,
    seed: Any,
    *,
    limits: SizeLimits | None = None,
) -> dict[str, Any]:
    """``preset`` with the explicit values applied, each checked; raises ValueError naming the value."""
    n = preset.num_frames if num_frames is None else num_frames
    if not isinstance(n, int) or n < 5 or (n - 1) % 4 or (limits is not None and n > limits.max_frames):
        if limits is None:
            accepted = "of the form 4k+1 and at least 5 (5, 9, ..., 93)"
        else:
            top = limits.max_frames
            accepted = f"of the form 4k+1 from 5 to {top} (5, 9, ..., {top}: the most this model covers)"
        raise ValueError(f"num_frames must be {accepted}, got {n!r}")
    h = preset.height if height is None else height
    w = preset.width if width is None else width
    for label, value, top in (
        ("height", h, limits.max_height if limits else None),
        ("width", w, limits.max_width if limits else None),
    ):
        if not isinstance(value, int) or value < 16 or value % 16 or (top is not None and value > top):
            upto = f" up to {top}" if top is not None else ""
            raise ValueError(
                f"{label} must be a positive multiple of 16{upto} (e.g. 432x768, 704x1280), got {value!r}"
            )
    s = preset.steps if steps is None else steps
    if not isinstance(s, int) or s < 1:
        raise ValueError(f"steps must be a positive integer, got {s!r}")
    raw = preset.guidance if guidance is None else guidance
    g = _number(raw)
    if g is None or not math.isfinite(g) or g < 0:
        raise ValueError(
            "guidance must be a finite number >= 0 (up to 1: no classifier-free guidance; "
            f"the recipe uses 7), got {raw!r}"
        )
    if fit not in FIT_MODES:
        raise ValueError(f"fit must be one of {', '.join(FIT_MODES)}, got {fit!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return {"height": h, "width": w, "num_frames": n, "steps": s, "guidance": g, "fps": preset.fps,
            "fit": fit, "seed": seed}  # fmt: skip


def _number(value: Any) -> float | None:
    """``value`` as a float (numpy scalars included), or None for what is not a number (bools too)."""
    if isinstance(value, (bool, str, bytes)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def conditioning_frames(frames: Any) -> list[np.ndarray]:
    """``frames`` as a list of uint8 [H, W, 3] RGB images; raises ValueError naming the one at fault."""
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        frames = list(frames)
    elif isinstance(frames, np.ndarray):
        frames = [frames]
    if not isinstance(frames, (list, tuple)) or not frames:
        raise ValueError("frames must be one uint8 [H, W, 3] RGB image or a non-empty list of them")
    for i, frame in enumerate(frames):
        if (
            not isinstance(frame, np.ndarray)
            or frame.dtype != np.uint8
            or frame.ndim != 3
            or frame.shape[2] != 3
        ):
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"conditioning frame {i} must be a uint8 [H, W, 3] RGB array, got {got}")
        if min(frame.shape[:2]) < 2:
            raise ValueError(f"conditioning frame {i} is too small: {frame.shape}")
    return list(frames)
