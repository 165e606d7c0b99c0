"""ROS Image / CompressedImage -> RGB for every accepted encoding, duck-typed messages."""

from __future__ import annotations

import array
import types

import cv2
import numpy as np
import pytest

from cosmos_ros.media.ros_image import (
    compressed_to_rgb,
    image_to_rgb,
    message_to_rgb,
    rgb_to_image_fields,
    rgb_to_raw,
)


def _scene() -> np.ndarray:
    y, x = np.mgrid[0:32, 0:48]
    return np.stack([x * 5, y * 7, 255 - x * 5], axis=-1).astype(np.uint8)


def _msg(rgb: np.ndarray, encoding: str, data_type=bytes, pad: int = 0) -> types.SimpleNamespace:
    data, step = rgb_to_raw(rgb, encoding)
    h = rgb.shape[0]
    if pad:
        rows = np.frombuffer(data, np.uint8).reshape(h, step)
        data = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1).tobytes()
        step += pad
    payload = array.array("B", data) if data_type is array.array else data_type(data)
    return types.SimpleNamespace(
        encoding=encoding, height=h, width=rgb.shape[1], step=step, data=payload, is_bigendian=0
    )


@pytest.mark.parametrize(
    ("encoding", "max_mean_error"),
    [("rgb8", 0), ("bgr8", 0), ("rgba8", 0), ("bgra8", 0), ("yuv422", 3), ("yuv422_yuy2", 3)]
    + [(f"bayer_{p}8", 1) for p in ("rggb", "bggr", "gbrg", "grbg")],
)
@pytest.mark.parametrize("data_type", [bytes, array.array, np.frombuffer])
def test_colour_encodings_give_rgb(encoding: str, max_mean_error: float, data_type) -> None:
    rgb = _scene()
    to_data = (lambda b: np.frombuffer(b, np.uint8)) if data_type is np.frombuffer else data_type
    out = image_to_rgb(_msg(rgb, encoding, to_data))
    assert out.dtype == np.uint8 and out.shape == (32, 48, 3)
    assert np.abs(out.astype(int) - rgb).mean() <= max_mean_error
    # The left column is red-free and blue-heavy: a swapped channel order would show here.
    assert out[16, 1, 2] > 200 and out[16, 1, 0] < 30


@pytest.mark.parametrize("encoding", ["mono8", "mono16"])
def test_mono_encodings(encoding: str) -> None:
    rgb = _scene()
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    out = image_to_rgb(_msg(rgb, encoding))
    assert np.array_equal(out, np.repeat(gray[..., None], 3, axis=2))


def test_mono16_big_endian_and_row_padding() -> None:
    gray16 = (np.arange(6 * 4, dtype=np.uint16).reshape(4, 6) * 2000).astype(">u2")
    rows = np.concatenate([gray16.view(np.uint8).reshape(4, 12), np.zeros((4, 4), np.uint8)], axis=1)
    msg = types.SimpleNamespace(
        encoding="mono16", height=4, width=6, step=16, data=rows.tobytes(), is_bigendian=1
    )
    out = image_to_rgb(msg)
    expected = np.round(gray16.astype(np.float64) * 255 / 65535)
    assert np.abs(out[..., 0].astype(int) - expected).max() <= 1


def test_row_padding_is_removed() -> None:
    rgb = _scene()
    assert np.array_equal(image_to_rgb(_msg(rgb, "bgr8", pad=7)), rgb)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "rgb8; jpeg compressed bgr8", "webp", "bmp", "tiff"])
def test_compressed(fmt: str) -> None:
    rgb = _scene()
    ext = {"webp": ".webp", "bmp": ".bmp", "tiff": ".tiff"}.get(fmt, ".png" if "png" in fmt else ".jpg")
    _, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    msg = types.SimpleNamespace(format=fmt, data=array.array("B", buf.tobytes()))
    out = message_to_rgb(msg)
    assert np.abs(out.astype(int) - rgb).mean() < (3 if ext in (".jpg", ".webp") else 0.01)


def test_compressed_depth_png_skips_its_config_header() -> None:
    """image_transport's compressedDepth: 12 header bytes, then a 16-bit PNG (shown like mono16)."""
    depth = (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 20).astype(np.uint16)
    _, png = cv2.imencode(".png", depth)
    msg = types.SimpleNamespace(format="16UC1; compressedDepth png", data=bytes(12) + png.tobytes())
    out = message_to_rgb(msg)
    expected = np.round(depth.astype(np.float32) * 255 / 65535).astype(np.uint8)
    assert np.array_equal(out[..., 0], expected) and np.array_equal(out[..., 2], expected)


def test_unsupported_encoding_is_named() -> None:
    msg = types.SimpleNamespace(encoding="32FC1", height=2, width=2, step=8, data=bytes(16), is_bigendian=0)
    with pytest.raises(ValueError, match=r"'32FC1'.*accepted: rgb8"):
        image_to_rgb(msg)
    with pytest.raises(ValueError, match=r"'theora'.*accepted: .*jpeg, png"):
        compressed_to_rgb(types.SimpleNamespace(format="theora", data=b"xx"))
    with pytest.raises(ValueError, match="cannot decode 'tiff'"):
        compressed_to_rgb(types.SimpleNamespace(format="tiff", data=b"xx"))
    with pytest.raises(ValueError, match="too short"):
        image_to_rgb(
            types.SimpleNamespace(encoding="rgb8", height=4, width=4, step=12, data=bytes(10), is_bigendian=0)
        )


def test_rgb_to_image_fields_round_trips() -> None:
    rgb = _scene()
    fields = rgb_to_image_fields(rgb)
    assert fields["encoding"] == "rgb8" and fields["step"] == 48 * 3 and fields["is_bigendian"] == 0
    assert np.array_equal(image_to_rgb(types.SimpleNamespace(**fields)), rgb)
    with pytest.raises(ValueError):
        rgb_to_image_fields(rgb[..., 0])
