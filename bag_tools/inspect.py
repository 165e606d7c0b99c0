"""What is in a bag: topics, types, counts, rates, duration, image sizes and encodings.

Image sizes read HEIGHTxWIDTH, the order ``bags convert --resolution`` takes, so a size can be
copied from one to the other.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cosmos_ros.bag_tools.readers import (
    IMAGE_TYPES,
    ROS2_METADATA,
    VIDEO_TYPES,
    bag_format,
    bags_in_folder,
    normalize_msgtype,
    open_bag,
    stream_format,
)

from cosmos_ros.media.video_stream import VideoStreamDecoder, VideoStreamError


@dataclass
class TopicInfo:
    topic: str
    msgtype: str
    count: int
    rate_hz: float
    #: "HEIGHTxWIDTH" of the first image, as ``--resolution`` takes it.
    image_size: str | None = None
    encoding: str | None = None
    image_height: int | None = None
    image_width: int | None = None
    #: Why the topic cannot be read (its messages are left out), or None.
    unreadable: str | None = None


@dataclass
class BagInfo:
    path: str
    format: str
    #: None for a bag without messages (rosbags reports 2**63-1 and 0 there).
    start_ns: int | None
    end_ns: int | None
    duration_s: float
    topics: list[TopicInfo] = field(default_factory=list)
    suggested_camera: str | None = None
    #: Topics left out because they cannot be read, and other things the reader did (one line each).
    warnings: list[str] = field(default_factory=list)
    message_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_image(reader: Any, conns: list[Any]) -> tuple[int | None, int | None, str | None]:
    """(height, width, encoding) of the topic's first message."""
    video = None
    for conn, _, raw in reader.messages(connections=conns):
        msg = reader.deserialize(raw, conn.msgtype)
        if normalize_msgtype(conn.msgtype) in VIDEO_TYPES:  # decode up to the first picture
            try:
                video = video or VideoStreamDecoder(conn.topic, stream_format(msg))
                rgb = video.decode(msg.data)
            except VideoStreamError:
                return None, None, stream_format(msg)
            if rgb is not None:
                return int(rgb.shape[0]), int(rgb.shape[1]), video.format
            continue
        if hasattr(msg, "encoding"):
            return int(msg.height), int(msg.width), str(msg.encoding)
        from cosmos_ros.media.ros_image import compressed_to_rgb

        try:
            rgb = compressed_to_rgb(msg)
            return int(rgb.shape[0]), int(rgb.shape[1]), str(msg.format)
        except ValueError:
            return None, None, str(msg.format)
    return None, None, None


def expand_bag_args(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Bags to inspect, with a folder of bags (not itself a bag) replaced by the bags inside it.

    Why: ``inspect bags/`` is a natural thing to type; reading is harmless, so each bag is shown
    (with a note) instead of an error from the reader about a missing metadata.yaml.
    """
    out: list[Path] = []
    notes: list[str] = []
    for text in paths:
        path = Path(text)
        inside = bags_in_folder(path) if path.is_dir() and not (path / ROS2_METADATA).is_file() else []
        if inside:
            notes.append(f"{path} is a folder of {len(inside)} bag(s), not a bag; inspecting each")
            out.extend(inside)
        else:
            out.append(path)
    return out, notes


def inspect_bag(path: str | os.PathLike[str]) -> BagInfo:
    """Read a bag's index (and one message per image topic) without reading the whole bag."""
    path = Path(path)
    with open_bag(path) as reader:
        count = reader.message_count
        start, end = (reader.start_time, reader.end_time) if count else (None, None)
        duration = max(end - start, 0) / 1e9 if start is not None and end is not None else 0.0
        info = BagInfo(str(path), bag_format(path), start, end, duration, message_count=count)
        info.warnings.extend(reader.warnings)
        by_topic: dict[str, list[Any]] = {}
        for conn in reader.connections:
            by_topic.setdefault(conn.topic, []).append(conn)
        for topic, conns in sorted(by_topic.items()):
            count = sum(c.msgcount or 0 for c in conns)
            rate = (count - 1) / duration if duration > 0 and count > 1 else 0.0
            item = TopicInfo(topic, conns[0].msgtype, count, round(rate, 3))
            if item.msgtype in IMAGE_TYPES and count:
                try:
                    item.image_height, item.image_width, item.encoding = _first_image(reader, conns)
                except Exception as exc:  # a damaged chunk or bad CDR: say so, still list the topic
                    first = " ".join(str(exc).split())[:160] or type(exc).__name__
                    info.warnings.append(f"{topic}: its first message cannot be read ({first})")
                if item.image_height is not None:
                    item.image_size = f"{item.image_height}x{item.image_width}"
            info.topics.append(item)
        for topic, why in sorted(reader.skipped.items()):
            msgtype = next((c.msgtype for c in reader.raw_connections if c.topic == topic), "?")
            count = sum(c.msgcount or 0 for c in reader.raw_connections if c.topic == topic)
            info.topics.append(TopicInfo(topic, msgtype, count, 0.0, unreadable=why))
        info.topics.sort(key=lambda t: t.topic)
    images = [t for t in info.topics if t.msgtype in IMAGE_TYPES and t.count and not t.unreadable]
    if images:
        # The busiest camera; raw beats compressed at equal counts (no compression loss).
        best = max(images, key=lambda t: (t.count, t.msgtype == "sensor_msgs/msg/Image"))
        info.suggested_camera = best.topic
    return info


def format_table(info: BagInfo) -> str:
    """A readable table for one bag."""
    empty = "  (no messages)" if not info.message_count else ""
    lines = [
        f"bag: {info.path}  format: {info.format}  duration: {info.duration_s:.2f} s{empty}",
        f"{'topic':<32} {'type':<34} {'count':>7} {'rate Hz':>8}  image",
    ]
    for t in info.topics:
        size = f"{t.image_size} (HxW)" if t.image_size else "?"
        image = f"{size} {t.encoding or ''}" if t.msgtype in IMAGE_TYPES else ""
        if t.unreadable:
            image = "UNREADABLE, left out (see warnings)"
        lines.append(f"{t.topic:<32} {t.msgtype:<34} {t.count:>7} {t.rate_hz:>8.2f}  {image}".rstrip())
    lines.append(f"suggested camera topic: {info.suggested_camera or '(no image topic)'}")
    lines.extend(f"warning: {w}" for w in info.warnings)
    return "\n".join(lines)
