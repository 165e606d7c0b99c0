"""Cut a resampled stream into fixed-length clips (4k+1 frames) with a stride.

Holds only the last ``length`` grid points; frames are decoded and fitted lazily, only for
clips that are actually written (so ``--resume`` skips the decoding of finished clips).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from cosmos_ros.bag_tools.resample import GridPoint


def check_clip_length(length: int) -> int:
    """Clip lengths must be 4k+1 (the Wan VAE compresses time by 4 after the first frame)."""
    if length < 1 or (length - 1) % 4:
        raise ValueError(f"clip length must be 4k+1 frames (e.g. 9, 33, 93), got {length}")
    return length


@dataclass(frozen=True)
class Window:
    """A complete clip window: ``index`` counts windows from the episode start."""

    index: int
    points: list[GridPoint]


@dataclass(frozen=True)
class SkippedWindow:
    """A window that gives no clip: ``missing`` grid points lack a frame, or it repeats a clip."""

    index: int
    start_ns: int
    end_ns: int
    missing: int
    #: The index of the window whose source frames this one repeats exactly.
    duplicate_of: int | None = None


class ClipAssembler:
    """Feed grid points in order; get complete windows (every point has a frame) or skip notes.

    A window made of exactly the source frames of the previous clip is skipped: when the source
    is slower than the output rate (or a bag is a few frames long) several grid points hold the
    same frame, and identical clips would weigh that moment twice in training. Comparing with the
    previous clip is enough: stamps never decrease along the grid, so a window equal to an older
    clip equals every clip since.
    """

    def __init__(self, length: int, stride: int) -> None:
        self.length = check_clip_length(length)
        if stride < 1:
            raise ValueError(f"clip stride must be >= 1 frame, got {stride}")
        self.stride = stride
        self.points: deque[GridPoint] = deque(maxlen=length)
        self.last: tuple[int, tuple[int | None, ...]] | None = None

    def push(self, point: GridPoint) -> Window | SkippedWindow | None:
        self.points.append(point)
        start = point.index - self.length + 1
        if start < 0 or start % self.stride:
            return None
        window = list(self.points)
        missing = sum(p.item is None for p in window)
        index = start // self.stride
        if missing:
            return SkippedWindow(index, window[0].time_ns, window[-1].time_ns, missing)
        stamps = tuple(p.source_stamp_ns for p in window)
        if self.last is not None and self.last[1] == stamps:
            return SkippedWindow(index, window[0].time_ns, window[-1].time_ns, 0, self.last[0])
        self.last = (index, stamps)
        return Window(index, window)


class FrameDecoder:
    """Decode + fit one camera's source frames, caching the few that overlapping windows share.

    The cache is keyed by source stamp (unique per camera: the resampler drops repeats).
    """

    def __init__(self, decode: Callable[[Any], np.ndarray], cache_size: int) -> None:
        self.decode = decode
        self.cache: dict[int, np.ndarray] = {}
        self.order: deque[int] = deque()
        self.cache_size = cache_size

    def frames(self, window: Window) -> np.ndarray:
        out = []
        for point in window.points:
            key = int(point.source_stamp_ns or 0)
            if key not in self.cache:
                self.cache[key] = self.decode(point.item)
                self.order.append(key)
                while len(self.order) > self.cache_size:
                    self.cache.pop(self.order.popleft(), None)
            out.append(self.cache[key])
        return np.stack(out)
