"""ROS ``sensor_msgs/Image`` and ``CompressedImage`` <-> uint8 RGB numpy (no rclpy, no cv_bridge).

Works duck-typed on messages deserialized by rosbags and on rclpy messages alike: only the
fields ``encoding, height, width, step, data, is_bigendian`` (Image) or ``format, data``
(CompressedImage) are read, and ``data`` may be bytes, a numpy array, an ``array.array`` or a
list of ints. Colour conversion is rosbags-image's (OpenCV underneath); row padding (``step``
larger than ``width * bytes per pixel``) is removed here because rosbags-image ignores ``step``.
"""

from __future__ import annotations

import array
import sys
from typing import Any

import numpy as np

#: Raw encodings accepted by :func:`image_to_rgb`: name -> (numpy dtype, channels).
RAW_ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("uint8", 3),
    "bgr8": ("uint8", 3),
    "rgba8": ("uint8", 4),
    "bgra8": ("uint8", 4),
    "mono8": ("uint8", 1),
    "8UC1": ("uint8", 1),
    "8UC3": ("uint8", 3),
    "mono16": ("uint16", 1),
    "16UC1": ("uint16", 1),
    "yuv422": ("uint8", 2),
    "uyvy": ("uint8", 2),
    "yuv422_yuy2": ("uint8", 2),
    "yuyv": ("uint8", 2),
    "bayer_rggb8": ("uint8", 1),
    "bayer_bggr8": ("uint8", 1),
    "bayer_gbrg8": ("uint8", 1),
    "bayer_grbg8": ("uint8", 1),
}
#: Compressed formats accepted by :func:`compressed_to_rgb` (matched on the ``format`` string).
COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "png")
#: Other picture formats OpenCV decodes that CompressedImage publishers write (also accepted).
OTHER_PICTURE_FORMATS: tuple[str, ...] = ("jpg", "webp", "bmp", "tiff", "tif", "jp2")
#: image_transport's compressedDepth plugin puts a 12-byte config header before its PNG.
_DEPTH_HEADER_BYTES = 12

# Encodings rosbags-image does not name the way ROS drivers write them.
_ALIASES = {"8UC1": "mono8", "8UC3": "bgr8", "16UC1": "mono16"}


def _as_bytes_view(data: Any) -> np.ndarray:
    """A flat uint8 view of a message's ``data`` without copying where possible."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else data.view(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, array.array):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8)


def _unsupported(encoding: str) -> ValueError:
    return ValueError(
        f"unsupported image encoding {encoding!r}; accepted: {', '.join(RAW_ENCODINGS)} "
        f"(sensor_msgs/Image) or {', '.join((*COMPRESSED_FORMATS, *OTHER_PICTURE_FORMATS))} "
        "(sensor_msgs/CompressedImage, compressedDepth png too)"
    )


def is_compressed(msg: Any) -> bool:
    """True for CompressedImage-like messages (they have ``format`` and no ``encoding``)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def image_to_rgb(msg: Any) -> np.ndarray:
    """Convert a ``sensor_msgs/Image``-like message to uint8 [H, W, 3] RGB.

    mono16 is scaled to 8 bit (value * 255 / 65535); alpha channels are dropped.
    """
    from rosbags.image.image import convert_color

    encoding = str(msg.encoding)
    if encoding not in RAW_ENCODINGS:
        raise _unsupported(encoding)
    dtype_name, channels = RAW_ENCODINGS[encoding]
    dtype = np.dtype(dtype_name)
    height, width = int(msg.height), int(msg.width)
    row_bytes = width * channels * dtype.itemsize
    step = int(msg.step) or row_bytes
    buf = _as_bytes_view(msg.data)
    if step < row_bytes or buf.size < step * (height - 1) + row_bytes:
        raise ValueError(
            f"image data too short for {encoding} {height}x{width} (HxW): {buf.size} bytes with step {step} "
            f"(need step >= {row_bytes} and {step * height} bytes)"
        )
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row_bytes), strides=(step, 1))
    pixels = np.ascontiguousarray(rows).view(dtype)
    if dtype.itemsize > 1 and bool(msg.is_bigendian) != (sys.byteorder == "big"):
        pixels = pixels.byteswap()
    shape = (height, width) if channels == 1 else (height, width, channels)
    pixels = pixels.reshape(shape)
    rgb = convert_color(pixels, _ALIASES.get(encoding, encoding), "rgb8")
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage``-like message (jpeg or png) to uint8 [H, W, 3] RGB."""
    import cv2

    fmt = str(msg.format).lower()
    # ROS formats look like "jpeg", "png", "rgb8; jpeg compressed bgr8", "mono8; png compressed"
    # or "16UC1; compressedDepth png" (a depth picture, shown as 8-bit grey like mono16).
    if not any(name in fmt for name in (*COMPRESSED_FORMATS, *OTHER_PICTURE_FORMATS)):
        raise _unsupported(str(msg.format))
    data = _as_bytes_view(msg.data)
    if "compresseddepth" in fmt:
        data = data[_DEPTH_HEADER_BYTES:]
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot decode {msg.format!r} compressed image ({len(msg.data)} bytes)")
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) * (255.0 / 65535.0)).round().astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def message_to_rgb(msg: Any) -> np.ndarray:
    """Convert an Image or CompressedImage message to uint8 [H, W, 3] RGB."""
    return compressed_to_rgb(msg) if is_compressed(msg) else image_to_rgb(msg)


def rgb_to_image_fields(frame: np.ndarray) -> dict[str, Any]:
    """The fields of a ``sensor_msgs/Image`` (rgb8) holding ``frame``, for publishing."""
    frame = np.ascontiguousarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames must be uint8 [H, W, 3] RGB, got {frame.dtype} {frame.shape}")
    height, width = frame.shape[:2]
    return {
        "height": int(height),
        "width": int(width),
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": int(width * 3),
        "data": frame.tobytes(),
    }


def rgb_to_raw(frame: np.ndarray, encoding: str) -> tuple[bytes, int]:
    """Encode uint8 RGB into a raw ``encoding`` (the inverse of :func:`image_to_rgb`); returns (data, step).

    Lossy for mono/yuv/bayer, as a camera would be. Used to write synthetic bags.
    """
    import cv2

    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    h, w = frame.shape[:2]
    if encoding == "rgb8":
        out = frame
    elif encoding == "bgr8":
        out = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    elif encoding == "rgba8":
        out = cv2.cvtColor(frame, cv2.COLOR_RGB2RGBA)
    elif encoding == "bgra8":
        out = cv2.cvtColor(frame, cv2.COLOR_RGB2BGRA)
    elif encoding == "mono8":
        out = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    elif encoding == "mono16":
        out = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    elif encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv"):
        # BT.601 limited range: what OpenCV's YUV422 -> RGB conversions (and most cameras) assume.
        r, g, b = (frame[..., i].astype(np.float32) for i in range(3))
        y = np.clip(16 + 0.257 * r + 0.504 * g + 0.098 * b, 0, 255).round().astype(np.int32)
        yuv = np.stack(
            [y, 128 - 0.148 * r - 0.291 * g + 0.439 * b, 128 + 0.439 * r - 0.368 * g - 0.071 * b], axis=-1
        )
        yuv = np.clip(yuv, 0, 255).round().astype(np.int32)
        y = yuv[..., 0]
        u = (yuv[:, 0::2, 1] + yuv[:, 1::2, 1]) // 2
        v = (yuv[:, 0::2, 2] + yuv[:, 1::2, 2]) // 2
        packed = np.empty((h, w, 2), dtype=np.uint8)
        chroma = np.empty((h, w), dtype=np.int32)
        chroma[:, 0::2], chroma[:, 1::2] = u, v
        if encoding in ("yuv422", "uyvy"):
            packed[..., 0], packed[..., 1] = chroma, y
        else:
            packed[..., 0], packed[..., 1] = y, chroma
        out = packed
    elif encoding.startswith("bayer_") and encoding in RAW_ENCODINGS:
        pattern = encoding[len("bayer_") : -1]  # e.g. "rggb": colours of (0,0), (0,1), (1,0), (1,1)
        index = {"r": 0, "g": 1, "b": 2}
        out = np.empty((h, w), dtype=np.uint8)
        for (dy, dx), colour in zip(((0, 0), (0, 1), (1, 0), (1, 1)), pattern, strict=True):
            out[dy::2, dx::2] = frame[dy::2, dx::2, index[colour]]
    else:
        raise _unsupported(encoding)
    out = np.ascontiguousarray(out)
    return out.tobytes(), int(out.strides[0])
