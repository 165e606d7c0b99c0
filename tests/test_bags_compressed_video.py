"""bags inspect / convert on foxglove_msgs/CompressedVideo topics (issue 17, "Also build").

The bags are mcap files written with rosbags' writer, holding H.264 packets that libx264 (through
PyAV) encoded from test-pattern frames, one packet per message as Foxglove's recorders write them;
the pattern's index bits tell which source frame each clip frame came from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from bags_helpers import TARGET, cli, expected_source_index
from cosmos_ros.bag_tools.dataset_format import load_dataset
from cosmos_ros.bag_tools.synthetic import SynthSpec, decode_pattern, pattern_frame

from cosmos_ros.media.video import read_video

VIDEO = "foxglove_msgs/msg/CompressedVideo"
VIDEO_DEF = "builtin_interfaces/Time timestamp\nstring frame_id\nuint8[] data\nstring format\n"
SPEC = SynthSpec(frames=40, fps=30.0, height=64, width=96, test_pattern=True)
GOP = 10


FFMPEG = "ffmpeg_image_transport_msgs/msg/FFMPEGPacket"
FFMPEG_DEF = (
    "std_msgs/Header header\nint32 width\nint32 height\nstring encoding\nuint64 pts\nuint8 flags\n"
    "bool is_bigendian\nuint8[] data\n"
)


def encode_packets(frames: int, encoder_name: str = "libx264", gop: int = GOP) -> list[bytes]:
    """One Annex B access unit per test-pattern frame, a keyframe every ``gop`` frames, no B-frames."""
    import av

    encoder = av.CodecContext.create(encoder_name, "w")
    encoder.width, encoder.height, encoder.pix_fmt = SPEC.width, SPEC.height, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    if encoder_name == "libx265":
        encoder.options = {"x265-params": f"keyint={gop}:bframes=0:log-level=error", "crf": "12"}
    else:
        x264 = {"g": str(gop), "bf": "0", "tune": "zerolatency", "preset": "ultrafast", "crf": "12"}
        encoder.options = x264
    packets = []
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(pattern_frame(i, SPEC.height, SPEC.width), format="rgb24")
        frame.pts = i
        packets += [bytes(p) for p in encoder.encode(frame.reformat(format="yuv420p"))]
    packets += [bytes(p) for p in encoder.encode(None)]
    assert len(packets) == frames
    return packets


def write_video_bag(
    path: Path, packets: Sequence[bytes], keep: Sequence[int], fmt: str = "h264", msgtype: str = VIDEO
) -> Path:
    """An mcap bag with /camera/h264 (CompressedVideo or FFMPEGPacket): packet i at the pattern's
    stamp i, for i in keep; ``fmt`` is the CompressedVideo format or the FFMPEGPacket encoding."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    store.register(get_types_from_msg(VIDEO_DEF if msgtype == VIDEO else FFMPEG_DEF, msgtype))
    types = store.types
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        msgdef, _ = store.generate_msgdef(msgtype, ros_version=2)
        rihs01 = store.hash_rihs01(msgtype)
        conn = writer.add_connection("/camera/h264", msgtype, msgdef=msgdef, rihs01=rihs01)
        for i in keep:
            stamp = SPEC.stamp_ns(i)
            time = types["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9)
            data = np.frombuffer(packets[i], dtype=np.uint8)
            if msgtype == VIDEO:
                msg = types[VIDEO](timestamp=time, frame_id="cam", data=data, format=fmt)
            else:
                header = types["std_msgs/msg/Header"](stamp=time, frame_id="cam")
                msg = types[FFMPEG](header=header, width=SPEC.width, height=SPEC.height, encoding=fmt, pts=i,
                                    flags=int(i % GOP == 0), is_bigendian=False, data=data)  # fmt: skip
            writer.write(conn, stamp + 1_000_000, store.serialize_cdr(msg, msgtype))
    return path


@pytest.fixture(scope="module")
def packets() -> list[bytes]:
    return encode_packets(SPEC.frames)


def _convert(bag: Path, out: Path) -> object:
    return cli("bags", "convert", str(bag), "-o", str(out), *TARGET, "--prompt", "p")


@pytest.mark.parametrize(
    ("encoder", "fmt", "msgtype"),
    [("libx264", "h264", VIDEO), ("libx265", "h265", VIDEO), ("libx264", "libx264", FFMPEG)],
    ids=["CompressedVideo-h264", "CompressedVideo-h265", "FFMPEGPacket-libx264"],
)
def test_a_video_topic_converts_to_clips_of_the_right_source_frames(
    tmp_path: Path, packets: list[bytes], encoder: str, fmt: str, msgtype: str
) -> None:
    stream = packets if encoder == "libx264" else encode_packets(SPEC.frames, encoder)
    bag = write_video_bag(tmp_path / "video", stream, range(SPEC.frames), fmt, msgtype)
    shown = cli("bags", "inspect", str(bag), "--json")
    assert shown.returncode == 0, shown.stderr
    (info,) = json.loads(shown.stdout)["bags"]
    assert info["suggested_camera"] == "/camera/h264"
    topic = next(t for t in info["topics"] if t["topic"] == "/camera/h264")
    assert (topic["image_size"], topic["unreadable"]) == ("64x96", None)
    result = _convert(bag, tmp_path / "ds")
    assert result.returncode == 0, result.stderr
    dataset = load_dataset(tmp_path / "ds")
    assert len(dataset.clips) == 2
    for clip in dataset.clips:
        frames, _ = read_video(tmp_path / "ds" / clip.video)
        first = round((clip.start_stamp_ns - SPEC.start_ns) * clip.fps / 1e9)
        for k, frame in enumerate(frames):
            index, rgb_ok = decode_pattern(frame)
            assert rgb_ok, (clip.clip_id, k)
            assert index == expected_source_index(first + k, clip.fps, SPEC.frames, SPEC), (clip.clip_id, k)


def test_a_recording_that_starts_mid_stream_skips_to_the_first_keyframe(
    tmp_path: Path, packets: list[bytes]
) -> None:
    bag = write_video_bag(tmp_path / "late", packets, range(4, SPEC.frames))  # packets 4-9 need packet 0
    result = _convert(bag, tmp_path / "ds")
    assert result.returncode == 0, result.stderr
    assert "/camera/h264: 6 h264 packet(s) before the first keyframe left out" in result.stderr
    dataset = load_dataset(tmp_path / "ds")
    assert dataset.clips and min(c.start_stamp_ns for c in dataset.clips) == SPEC.stamp_ns(GOP)
    frames, _ = read_video(tmp_path / "ds" / dataset.clips[0].video)
    assert decode_pattern(frames[0]) == (GOP, True)


def test_a_stream_without_any_keyframe_is_a_clear_error(tmp_path: Path, packets: list[bytes]) -> None:
    keep = [i for i in range(SPEC.frames) if i % GOP]  # every keyframe dropped
    bag = write_video_bag(tmp_path / "nokey", packets, keep)
    result = _convert(bag, tmp_path / "ds")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("cosmos-ros: error")]
    assert errors and "/camera/h264: 36 h264 packet(s) and no keyframe" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "ds").exists()


def test_an_unsupported_video_format_is_named_with_the_accepted_ones(
    tmp_path: Path, packets: list[bytes]
) -> None:
    bag = write_video_bag(tmp_path / "mjpeg", packets, range(SPEC.frames), fmt="mjpeg")
    result = _convert(bag, tmp_path / "ds")
    assert result.returncode != 0
    assert "video format 'mjpeg' is not supported; accepted: h264, h265, hevc, vp9, av1" in result.stderr
    assert "Traceback" not in result.stderr
