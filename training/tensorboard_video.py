"""TensorBoard videos without moviepy.

torch's ``SummaryWriter.add_video`` imports ``moviepy.editor``, which moviepy 2 removed, so the
video silently goes missing. We encode the animated GIF with Pillow ourselves and write the same
``Summary.Image`` proto that ``add_video`` would; TensorBoard's Images tab plays it.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np


def encode_gif(frames: np.ndarray, fps: float) -> bytes:
    """Encode uint8 ``[T, H, W, 3]`` RGB frames as a looping animated GIF."""
    from PIL import Image

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"expected non-empty uint8 [T, H, W, 3] frames, got {frames.dtype} {frames.shape}")
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(1, round(1000 / fps)),
        loop=0,
    )
    return buf.getvalue()


def add_gif_video(writer: Any, tag: str, frames: np.ndarray, step: int, fps: float) -> None:
    """Write ``frames`` (uint8 ``[T, H, W, 3]``) to ``writer`` as an animated-GIF image summary."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    _, h, w, c = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=encode_gif(frames, fps))
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
