"""Prediction presets: the published recipe and a fast preview.

``full``       the recipe: 432x768, 93 frames (about 5.8 s at 16 fps), 36 steps, guidance 7.
``full-720p``  the pipeline's native size: 704x1280, 93 frames, 36 steps, guidance 7.
``preview``    fast look: 432x768, 29 frames (1.8 s), 12 steps, guidance 7 -- about 10x less
               compute than ``full`` (3.2x fewer latent frames, 3x fewer steps).

A model directory may carry a hint file (the tiny test model does, real checkpoints do not)
whose ``presets`` entries override these values, so the same preset names stay fast on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cosmos_ros.model.tiny import HINT_NAME, HINT_SCHEMA


@dataclass(frozen=True)
class Preset:
    """Generation settings that a preset name stands for."""

    height: int
    width: int
    num_frames: int
    steps: int
    guidance: float
    fps: float


PRESETS: dict[str, Preset] = {
    "full": Preset(height=432, width=768, num_frames=93, steps=36, guidance=7.0, fps=16.0),
    "full-720p": Preset(height=704, width=1280, num_frames=93, steps=36, guidance=7.0, fps=16.0),
    "preview": Preset(height=432, width=768, num_frames=29, steps=12, guidance=7.0, fps=16.0),
}


def read_model_hint(model_dir: str | Path) -> dict[str, Any] | None:
    """Read the optional hint file of a model directory (``None`` for real checkpoints)."""
    path = Path(model_dir) / HINT_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if data.get("schema") != HINT_SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r} is not {HINT_SCHEMA!r}")
    return data


def presets_for(hint: dict[str, Any] | None) -> dict[str, Preset]:
    """The preset table for a model: the defaults, with the hint file's overrides applied."""
    table = dict(PRESETS)
    for name, overrides in ((hint or {}).get("presets") or {}).items():
        base = table.get(name, PRESETS["full"])
        known = {k: v for k, v in overrides.items() if k in Preset.__dataclass_fields__}
        table[name] = replace(base, **known)
    return table


def resolve_preset(name: str, table: dict[str, Preset]) -> Preset:
    if name not in table:
        raise ValueError(f"unknown preset {name!r}; accepted: {', '.join(sorted(table))}")
    return table[name]
