"""Write synthetic robot demonstration bags (ROS 2 mcap / sqlite3, ROS 1) with rosbags' writers.

Three kinds of pictures:

- an episode of the procedural robot world (``embodiment`` set; see world.py): the arm of that
  embodiment does one scripted pick-and-place over the whole bag, and the bag's prompt describes
  it (what cosmos-mini was trained on, and what the demo records);
- a scene: an OpenCV-drawn two-link robot arm carrying a red block into a blue bowl (the demo);
- a test pattern (``test_pattern=True``) that encodes the source frame index in the pixels, so a
  test can decode which source frame ended up in each output frame and that the channels are RGB.
  The top half is three colour bars (red | green | blue); the bottom half is 8 black/white stripes
  holding the frame index in binary (most significant bit on the left).

No ROS installation is needed: rosbags serializes the messages itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cosmos_ros.media.ros_image import COMPRESSED_FORMATS, RAW_ENCODINGS, rgb_to_raw

BagFormat = Literal["mcap", "sqlite3", "ros1"]
BAG_FORMATS: tuple[str, ...] = ("mcap", "sqlite3", "ros1")
PATTERN_BITS = 8
DEFAULT_PROMPT = "The robot arm picks up the red block and places it in the blue bowl."


@dataclass
class SynthSpec:
    """What a synthetic bag holds. Times are header stamps; receive time adds ``latency_ns``."""

    frames: int = 48
    fps: float = 30.0
    height: int = 64
    width: int = 96
    #: A raw sensor_msgs/Image encoding, or "jpeg"/"png" for sensor_msgs/CompressedImage.
    encoding: str = "rgb8"
    topics: tuple[str, ...] = ("/camera/image_raw",)
    prompt: str | None = DEFAULT_PROMPT
    prompt_topic: str = "/task/prompt"
    test_pattern: bool = False
    start_ns: int = 1_700_000_000_000_000_000
    latency_ns: int = 5_000_000
    #: (frame index, seconds): stamps from that frame on are shifted by that many seconds.
    gaps: Sequence[tuple[int, float]] = ()
    #: Frame indices at which an std_msgs/String is published on ``marker_topic``.
    marker_frames: Sequence[int] = ()
    marker_topic: str = "/episode_marker"
    compress: bool = False
    #: A world.py embodiment name: draw that robot's episode ``episode_seed`` instead of the scene.
    embodiment: str | None = None
    episode_seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def stamp_ns(self, index: int) -> int:
        shift = sum(seconds for at, seconds in self.gaps if index >= at)
        return self.start_ns + round((index / self.fps + shift) * 1e9)


def pattern_frame(index: int, height: int, width: int) -> np.ndarray:
    """The test-pattern frame for source frame ``index`` (uint8 RGB)."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    top = height // 2
    third = width // 3
    frame[:top, :third, 0] = 255
    frame[:top, third : 2 * third, 1] = 255
    frame[:top, 2 * third :, 2] = 255
    bits = index % (1 << PATTERN_BITS)
    for bit in range(PATTERN_BITS):
        x0, x1 = bit * width // PATTERN_BITS, (bit + 1) * width // PATTERN_BITS
        if (bits >> (PATTERN_BITS - 1 - bit)) & 1:
            frame[top:, x0:x1] = 255
    return frame


def decode_pattern(frame: np.ndarray) -> tuple[int, bool]:
    """Read ``(frame index mod 256, colour bars in RGB order)`` back from a (resized) pattern frame."""
    frame = np.asarray(frame, dtype=np.float32)
    height, width = frame.shape[:2]
    top = height // 2
    row = slice(top + (height - top) // 4, height - (height - top) // 4)
    index = 0
    for bit in range(PATTERN_BITS):
        x0, x1 = bit * width / PATTERN_BITS, (bit + 1) * width / PATTERN_BITS
        lo = int(x0 + (x1 - x0) * 0.3)
        centre = slice(lo, max(int(x0 + (x1 - x0) * 0.7), lo + 1))
        index = (index << 1) | int(frame[row, centre].mean() > 127)
    bar_row = slice(top // 4, max(top * 3 // 4, top // 4 + 1))
    rgb_ok = True
    for bar in range(3):
        x0, x1 = bar * width // 3, (bar + 1) * width // 3
        pixel = frame[bar_row, x0 + (x1 - x0) // 4 : x1 - (x1 - x0) // 4].reshape(-1, 3).mean(axis=0)
        rgb_ok &= int(np.argmax(pixel)) == bar and pixel[bar] > 150
    return index, bool(rgb_ok)


def scene_frame(index: int, total: int, height: int, width: int, view: int = 0) -> np.ndarray:
    """One frame of the arm-moves-block-to-bowl scene (uint8 RGB); ``view`` 1 is a mirrored side view."""
    import cv2

    progress = index / max(total - 1, 1)
    canvas = np.full((height, width, 3), (200, 205, 210) if view == 0 else (180, 190, 200), np.uint8)
    s = min(height, width) / 64.0
    table_y = int(height * 0.78)
    cv2.rectangle(canvas, (0, table_y), (width, height), (120, 90, 60), -1)
    bowl = (int(width * 0.78), table_y)
    cv2.ellipse(canvas, bowl, (int(9 * s), int(5 * s)), 0, 0, 180, (40, 70, 200), -1)
    start = np.array([width * 0.25, table_y - 3 * s])
    lift = np.array([width * 0.5, table_y - 22 * s])
    end = np.array([bowl[0], table_y - 4 * s])
    if progress < 0.2:
        block = start
    elif progress < 0.6:
        t = (progress - 0.2) / 0.4
        block = (1 - t) ** 2 * start + 2 * (1 - t) * t * lift + t**2 * end
    else:
        block = end
    holding = 0.1 <= progress <= 0.65
    rest = start if progress < 0.1 else end
    gripper = block if holding else rest + np.array([0.0, -10 * s])
    base = np.array([width * 0.5, float(table_y)])
    l1 = l2 = 0.3 * width
    dx, dy = gripper - base
    dist = min(math.hypot(dx, dy), l1 + l2 - 1e-3)
    elbow_angle = math.acos((l1**2 + l2**2 - dist**2) / (2 * l1 * l2))
    offset = math.asin(l2 * math.sin(math.pi - elbow_angle) / max(dist, 1e-6))
    elbows = [
        base + l1 * np.array([math.cos(a), math.sin(a)])
        for a in (math.atan2(dy, dx) - offset, math.atan2(dy, dx) + offset)
    ]
    elbow = min(elbows, key=lambda e: e[1])  # elbow up, above the table
    thickness = max(1, int(3 * s))
    cv2.line(canvas, tuple(base.astype(int)), tuple(elbow.astype(int)), (90, 90, 90), thickness)
    cv2.line(canvas, tuple(elbow.astype(int)), tuple(gripper.astype(int)), (60, 60, 60), thickness)
    cv2.circle(canvas, tuple(base.astype(int)), int(4 * s), (30, 30, 30), -1)
    half = int(3 * s)
    bx, by = block.astype(int)
    cv2.rectangle(canvas, (bx - half, by - half), (bx + half, by + half), (220, 30, 30), -1)
    if view == 1:
        canvas = np.ascontiguousarray(canvas[:, ::-1])
    return canvas


def _make_header(typestore: Any, stamp_ns: int, frame_id: str, seq: int, ros1: bool) -> Any:
    time_cls = typestore.types["builtin_interfaces/msg/Time"]
    header_cls = typestore.types["std_msgs/msg/Header"]
    stamp = time_cls(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    if ros1:
        return header_cls(seq=seq, stamp=stamp, frame_id=frame_id)
    return header_cls(stamp=stamp, frame_id=frame_id)


def _image_message(typestore: Any, rgb: np.ndarray, encoding: str, header: Any) -> tuple[Any, str]:
    import cv2

    if encoding in COMPRESSED_FORMATS:
        ext = ".jpg" if encoding == "jpeg" else ".png"
        ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"OpenCV could not encode {encoding}")
        msgtype = "sensor_msgs/msg/CompressedImage"
        cls = typestore.types[msgtype]
        return cls(header=header, format=encoding, data=buf.reshape(-1)), msgtype
    if encoding not in RAW_ENCODINGS:
        accepted = ", ".join([*RAW_ENCODINGS, *COMPRESSED_FORMATS])
        raise ValueError(f"unsupported synthetic encoding {encoding!r}; accepted: {accepted}")
    data, step = rgb_to_raw(rgb, encoding)
    msgtype = "sensor_msgs/msg/Image"
    cls = typestore.types[msgtype]
    msg = cls(
        header=header,
        height=rgb.shape[0],
        width=rgb.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=step,
        data=np.frombuffer(data, dtype=np.uint8),
    )
    return msg, msgtype


def synth_format(path: str | os.PathLike[str], fmt: str | None) -> BagFormat:
    """The bag format for ``path``: ``fmt``, or ros1 for a ``.bag`` name and mcap otherwise.

    Why refuse a mismatch: readers tell a ROS 1 bag by its ``.bag`` file name and a ROS 2 bag by
    its folder, so an mcap folder named ``x.bag`` (or a ros1 file without ``.bag``) reads wrongly.
    """
    path = Path(path)
    ros1_name = path.suffix == ".bag"
    if fmt is None:
        return "ros1" if ros1_name else "mcap"
    if fmt not in BAG_FORMATS:
        raise ValueError(f"unknown bag format {fmt!r}; accepted: {', '.join(BAG_FORMATS)}")
    if ros1_name and fmt != "ros1":
        raise ValueError(
            f"{path}: a name ending in .bag is a ROS 1 bag file, but format {fmt} writes a ROS 2 "
            f"bag folder; use --format ros1, or a name without .bag for {fmt}"
        )
    if fmt == "ros1" and not ros1_name:
        raise ValueError(f"{path}: a ROS 1 bag is one file named *.bag; name it {path.name}.bag")
    return fmt  # type: ignore[return-value]


def write_synthetic_bag(path: str | os.PathLike[str], spec: SynthSpec, fmt: BagFormat | None = None) -> Path:
    """Write a demonstration bag at ``path`` (a folder for ROS 2, a ``.bag`` file for ROS 1).

    ``fmt`` None infers the format from the name (see :func:`synth_format`). Messages are
    generated and written one at a time, so any length takes little memory.
    """
    from rosbags.typesys import Stores, get_typestore

    fmt = synth_format(path, fmt)
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag output already exists: {path}")
    ros1 = fmt == "ros1"
    typestore = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
    serialize = typestore.serialize_ros1 if ros1 else typestore.serialize_cdr
    string_cls = typestore.types["std_msgs/msg/String"]
    if ros1:
        from rosbags.rosbag1 import Writer as Ros1Writer

        writer: Any = Ros1Writer(path)
        if spec.compress:
            writer.set_compression(Ros1Writer.CompressionFormat.LZ4)
    else:
        from rosbags.rosbag2 import StoragePlugin
        from rosbags.rosbag2 import Writer as Ros2Writer
        from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

        plugin = StoragePlugin.MCAP if fmt == "mcap" else StoragePlugin.SQLITE3
        writer = Ros2Writer(path, version=9, storage_plugin=plugin)
        if spec.compress:
            writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    image_type = (
        "sensor_msgs/msg/CompressedImage" if spec.encoding in COMPRESSED_FORMATS else "sensor_msgs/msg/Image"
    )
    episode = None
    if spec.embodiment is not None:
        from cosmos_ros.bag_tools.world import make_episode, render_frame

        episode = make_episode(spec.embodiment, spec.episode_seed, frames=spec.frames, fps=spec.fps)
        if spec.prompt == DEFAULT_PROMPT:
            spec = replace(spec, prompt=episode.prompt)
    with writer:
        cams = [writer.add_connection(t, image_type, typestore=typestore) for t in spec.topics]
        prompt_conn = writer.add_connection(spec.prompt_topic, "std_msgs/msg/String", typestore=typestore)
        marker_conn = None
        if spec.marker_frames:
            marker_conn = writer.add_connection(spec.marker_topic, "std_msgs/msg/String", typestore=typestore)
        if spec.prompt is not None:
            msg = string_cls(data=spec.prompt)
            writer.write(prompt_conn, spec.start_ns - 1_000_000, serialize(msg, "std_msgs/msg/String"))
        for index in range(spec.frames):
            stamp = spec.stamp_ns(index)
            if marker_conn is not None and index in spec.marker_frames:
                msg = string_cls(data=f"episode starts at frame {index}")
                writer.write(marker_conn, stamp - 1_000_000, serialize(msg, "std_msgs/msg/String"))
            for view, conn in enumerate(cams):
                if episode is not None:
                    rgb = render_frame(episode, index, spec.height, spec.width)
                elif spec.test_pattern:
                    rgb = pattern_frame(index, spec.height, spec.width)
                else:
                    rgb = scene_frame(index, spec.frames, spec.height, spec.width, view=view % 2)
                header = _make_header(typestore, stamp, f"camera_{view}", index, ros1)
                msg, msgtype = _image_message(typestore, rgb, spec.encoding, header)
                writer.write(conn, stamp + spec.latency_ns + view * 1000, serialize(msg, msgtype))
    return path
