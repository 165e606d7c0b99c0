"""Fit camera frames of any size and aspect to the model's resolution.

The documented rule: ``crop`` (default) resizes so the frame covers the target, then cuts the
centre; ``letterbox`` resizes so the frame fits inside the target and pads with black bars.
Both keep the aspect ratio; neither stretches.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

FitMode = Literal["crop", "letterbox"]
FIT_MODES: tuple[str, ...] = ("crop", "letterbox")


def fit_frame(image: np.ndarray, height: int, width: int, mode: FitMode = "crop") -> np.ndarray:
    """Return ``image`` (uint8 [H, W, 3]) resized to ``height`` x ``width`` by ``mode``."""
    import cv2

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}")
    if mode not in FIT_MODES:
        raise ValueError(f"unknown fit mode {mode!r}; accepted: {', '.join(FIT_MODES)}")
    src_h, src_w = image.shape[:2]
    if (src_h, src_w) == (height, width):
        return image.copy()
    cover = mode == "crop"
    scale = max(height / src_h, width / src_w) if cover else min(height / src_h, width / src_w)
    new_h = max(height if cover else 1, round(src_h * scale))
    new_w = max(width if cover else 1, round(src_w * scale))
    if cover:
        new_h, new_w = max(new_h, height), max(new_w, width)
    else:
        new_h, new_w = min(new_h, height), min(new_w, width)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp)
    if cover:
        top, left = (new_h - height) // 2, (new_w - width) // 2
        return np.ascontiguousarray(resized[top : top + height, left : left + width])
    out = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out
