"""The newest N frames of each camera, with their stamps, and the "too old" rule.

Plain Python (no rclpy) so the age rule is testable without DDS. The capture node stores the
raw messages and converts only the frames it actually sends, so a 30 Hz camera costs nothing
until a prediction is requested.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

#: Which clock ``max_frame_age`` is measured on.
AGE_SOURCES = ("receive", "header")


class FrameRefused(Exception):
    """No usable frame: none received yet, or the newest one is older than ``max_frame_age``."""


@dataclass(frozen=True)
class BufferedFrame:
    """One received camera message and when it was taken / received (seconds on the node clock)."""

    msg: Any
    header_stamp: float
    receive_time: float


class FrameBuffer:
    """Thread-safe ring buffer of the latest ``capacity`` frames of one camera."""

    def __init__(self, topic: str, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"buffer_size must be >= 1, got {capacity}")
        self.topic = topic
        self._frames: deque[BufferedFrame] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.received = 0

    def push(self, msg: Any, header_stamp: float, receive_time: float) -> None:
        with self._lock:
            self._frames.append(BufferedFrame(msg, header_stamp, receive_time))
            self.received += 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    def newest(
        self, count: int, now: float, max_age: float, age_source: str = "receive"
    ) -> list[BufferedFrame]:
        """The newest ``count`` frames, oldest first; refuses when the newest is too old.

        ``max_age <= 0`` disables the age check. Fewer than ``count`` frames is an error too:
        the caller asked for that many conditioning frames.
        """
        if age_source not in AGE_SOURCES:
            raise ValueError(f"age source must be one of {AGE_SOURCES}, got {age_source!r}")
        with self._lock:
            frames = list(self._frames)
        if not frames:
            raise FrameRefused(f"no frame received on {self.topic} yet")
        if len(frames) < count:
            raise FrameRefused(
                f"{count} conditioning frames requested but only {len(frames)} buffered on {self.topic}"
            )
        chosen = frames[-count:]
        newest = chosen[-1]
        taken = newest.receive_time if age_source == "receive" else newest.header_stamp
        age = now - taken
        if max_age > 0 and age > max_age:
            raise FrameRefused(
                f"newest frame on {self.topic} is {age:.2f} s old ({age_source} time), "
                f"older than max_frame_age={max_age:g} s; is the camera still publishing?"
            )
        return chosen
