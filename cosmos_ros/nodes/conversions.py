"""Conversions between ROS messages and the library's types (uint8 RGB arrays, seconds).

Camera messages are decoded with cv_bridge when it is importable (apt ROS installs) and with
:mod:`cosmos_ros.media.ros_image` otherwise (or when cv_bridge cannot handle an encoding), so the
nodes run from the pip wheels too. Output frames are always ``rgb8``.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

log = logging.getLogger(__name__)

_NS = 1_000_000_000


class UnsupportedImage(ValueError):
    """A camera message whose encoding/format cannot be turned into RGB."""


def stamp_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec / _NS


def seconds_to_stamp(seconds: float) -> Time:
    ns = round(seconds * _NS)
    return Time(sec=ns // _NS, nanosec=ns % _NS)


def shifted_header(header: Header, seconds: float) -> Header:
    """``header`` with its stamp moved by ``seconds`` (frame_id kept)."""
    return Header(stamp=seconds_to_stamp(stamp_to_seconds(header.stamp) + seconds), frame_id=header.frame_id)


def _cv_bridge() -> Any | None:
    try:
        return importlib.import_module("cv_bridge").CvBridge()
    except Exception:
        return None


_BRIDGE: Any | None = None
_BRIDGE_CHECKED = False


def _bridge() -> Any | None:
    global _BRIDGE, _BRIDGE_CHECKED
    if not _BRIDGE_CHECKED:
        _BRIDGE = _cv_bridge()
        _BRIDGE_CHECKED = True
    return _BRIDGE


def _ros_image() -> Any:
    return importlib.import_module("cosmos_ros.media.ros_image")


def supported_encodings() -> tuple[str, ...]:
    """Raw encodings every install can decode (the pure-Python fallback's list)."""
    return tuple(_ros_image().RAW_ENCODINGS)


def check_encoding(msg: Image | CompressedImage) -> str | None:
    """A reason string when ``msg`` cannot be decoded, else None (cheap: looks at the encoding only)."""
    if isinstance(msg, CompressedImage):
        fmt = msg.format.lower()
        if any(name in fmt for name in (*_ros_image().COMPRESSED_FORMATS, "jpg")):
            return None
        formats = ", ".join(_ros_image().COMPRESSED_FORMATS)
        return f"compressed format {msg.format!r} is not supported; accepted: {formats}"
    encodings = supported_encodings()
    if msg.encoding in encodings:
        return None
    return f"encoding {msg.encoding!r} is not supported; accepted: {', '.join(encodings)}"


def check_image(msg: Image | CompressedImage) -> str | None:
    """A reason string when ``msg`` cannot be decoded, else None: its encoding, and for raw images its size.

    Cheap (no decoding), so nodes run it on every frame as it arrives: a driver sending truncated
    frames is reported then, not minutes later when a prediction asks for one.
    """
    reason = check_encoding(msg)
    if reason is not None:
        return reason
    if isinstance(msg, CompressedImage):
        return None if len(msg.data) else f"compressed {msg.format!r} image has no data"
    dtype_name, channels = _ros_image().RAW_ENCODINGS[msg.encoding]
    row_bytes = msg.width * channels * np.dtype(dtype_name).itemsize
    step = msg.step or row_bytes
    if step < row_bytes:
        return (
            f"{msg.encoding} image {msg.height}x{msg.width} (HxW): step {msg.step} is too short "
            f"for one row of {row_bytes} bytes"
        )
    if len(msg.data) < step * msg.height:
        return (
            f"{msg.encoding} image {msg.height}x{msg.width} (HxW) is too short: {len(msg.data)} bytes "
            f"of data, fewer than step * height = {step} * {msg.height} = {step * msg.height}"
        )
    return None


class ArrivalCheck:
    """Checks each arriving frame; reports a camera's problem once when it starts, not at every frame."""

    def __init__(self) -> None:
        self.problems: dict[str, str] = {}  # topic -> why its latest frame cannot be used

    def check(self, topic: str, msg: Image | CompressedImage) -> str | None:
        """The problem of ``msg`` when it is new for ``topic`` (log it), else None."""
        reason = check_image(msg)
        if reason is None:
            self.problems.pop(topic, None)
            return None
        if self.problems.get(topic) == reason:
            return None
        self.problems[topic] = reason
        return reason


def image_msg_to_rgb(msg: Image | CompressedImage) -> np.ndarray:
    """Decode a camera message into a uint8 [H, W, 3] RGB array."""
    reason = check_image(msg)
    if reason is not None:
        raise UnsupportedImage(reason)
    bridge = _bridge()
    if bridge is not None:
        try:
            if isinstance(msg, CompressedImage):
                bgr = bridge.compressed_imgmsg_to_cv2(msg, desired_encoding="bgr8")
                return np.ascontiguousarray(bgr[..., ::-1])
            if msg.encoding not in ("mono16", "16UC1"):  # cv_bridge would wrap, not scale
                return np.ascontiguousarray(bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
        except Exception as exc:
            log.debug("cv_bridge could not convert %s: %s; using the fallback", msg.encoding, exc)
    try:
        return _ros_image().message_to_rgb(msg)
    except Exception as exc:
        kind = "compressed image" if isinstance(msg, CompressedImage) else f"{msg.encoding} image"
        raise UnsupportedImage(f"cannot decode {kind}: {exc}") from exc


def rgb_to_image_msg(frame: np.ndarray, header: Header) -> Image:
    """A ``rgb8`` sensor_msgs/Image holding ``frame`` (uint8 [H, W, 3])."""
    return Image(header=header, **_ros_image().rgb_to_image_fields(frame))


#: The ``format`` image_transport's compressed plugin writes for jpeg from an rgb8 source.
JPEG_FORMAT = "rgb8; jpeg compressed bgr8"


def rgb_to_jpeg_msg(frame: np.ndarray, header: Header, quality: int) -> CompressedImage:
    """A jpeg sensor_msgs/CompressedImage of ``frame`` (uint8 [H, W, 3] RGB), as image_transport
    writes it on ``<topic>/compressed`` (what Foxglove and a remote RViz read over Wi-Fi)."""
    import cv2

    if not 1 <= quality <= 100:
        raise ValueError(f"jpeg quality must be in 1..100, got {quality}")
    bgr = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot jpeg-encode a frame of shape {frame.shape}")
    return CompressedImage(header=header, format=JPEG_FORMAT, data=buf.tobytes())
