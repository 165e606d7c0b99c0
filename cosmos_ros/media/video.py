"""Read and write videos with PyAV.

Videos are ``uint8`` arrays shaped ``[T, H, W, 3]`` in RGB order everywhere in this project.
Written files are H.264 in an mp4 container with yuv420p pixels and the ``faststart`` flag, so
browsers play them; they are written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from cosmos_ros.atomic import atomic_path


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, read from its header and by counting frames."""

    path: Path
    frame_count: int
    height: int
    width: int
    fps: float


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"video frames must be uint8 [T, H, W, 3] RGB, got {frames.dtype} {tuple(frames.shape)}"
        )
    if frames.shape[0] == 0:
        raise ValueError("cannot write a video with no frames")
    return frames


def x264_options(width: int, crf: int = 18) -> dict[str, str]:
    """libx264 options for a frame ``width`` pixels wide: ``veryfast`` at ``crf``.

    Why the width: libx264 (build 165, as PyAV bundles it) reads uninitialised stack memory in its
    macroblock-tree rate control when the frame is an odd number of 16-pixel macroblocks wide
    (valgrind, seen at 16, 48, 80, 112, 144 and 208 pixels; never at 32, 64, 96, 768 or 1280), so the
    same frames could encode differently from one run to the next. At such widths the macroblock
    tree is switched off, which makes the output repeatable; at even widths (both released
    resolutions) the options, and so the bytes, are unchanged.
    """
    options = {"crf": str(crf), "preset": "veryfast"}
    if (width + 15) // 16 % 2:
        options["x264-params"] = "mbtree=0"
    return options


def write_video(path: str | os.PathLike[str], frames: np.ndarray, fps: float, *, crf: int = 18) -> Path:
    """Encode ``frames`` (uint8 [T, H, W, 3] RGB) as browser-playable H.264 mp4, atomically.

    Odd sizes are padded by one pixel on the right/bottom edge (yuv420p needs even sizes).
    """
    import av

    frames = _check_frames(frames)
    _, h, w, _ = frames.shape
    pad_h, pad_w = h % 2, w % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width = w + pad_w
            stream.height = h + pad_h
            stream.pix_fmt = "yuv420p"
            stream.options = x264_options(w + pad_w, crf)
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def read_video(path: str | os.PathLike[str], max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video into uint8 [T, H, W, 3] RGB frames; returns ``(frames, fps)``."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as exc:
        raise ValueError(f"cannot decode video {path}: {exc}") from exc
    if not frames:
        raise ValueError(f"video {path} holds no decodable frames")
    return np.stack(frames), fps


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Count the decodable frames of a video and read its size and frame rate."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    count = 0
    height = width = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            for frame in container.decode(stream):
                count += 1
                height, width = frame.height, frame.width
    except av.error.FFmpegError as exc:
        raise ValueError(f"cannot decode video {path}: {exc}") from exc
    return VideoInfo(path, count, height, width, fps)


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write one uint8 RGB image as PNG, atomically."""
    import cv2

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"PNG images must be uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}")
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"OpenCV could not encode a PNG for {path}")
    from cosmos_ros.atomic import atomic_write_bytes

    return atomic_write_bytes(path, buf.tobytes())
