"""Compressed video streams -> uint8 RGB frames, through PyAV.

Two message types carry them: foxglove_msgs/CompressedVideo (``format`` h264/h265/vp9/av1, what
Foxglove's bridges and recorders write) and ffmpeg_image_transport_msgs/FFMPEGPacket (``encoding``
the encoder's name, e.g. libx264 or hevc_nvenc: image_transport's ffmpeg plugin).

Why a decoder object: unlike a ``CompressedImage``, a video packet is not a picture on its own;
P-frames refer to earlier frames, so every packet of a topic goes through one decoder, in order.
A recording that starts in the middle of a group of pictures holds packets nothing can decode:
they are skipped (and counted) until the first keyframe, as players do, and a stream with no
keyframe at all is an error that says so. Foxglove's schema forbids B-frames, so each packet gives
at most one frame, in order, and keeps its own timestamp.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: ``format`` values of foxglove_msgs/CompressedVideo -> FFmpeg decoder names.
VIDEO_CODECS: dict[str, str] = {"h264": "h264", "h265": "hevc", "hevc": "hevc", "vp9": "vp9", "av1": "av1"}
#: Encoder names ffmpeg_image_transport writes in FFMPEGPacket.encoding (libx264, h264_nvenc,
#: hevc_vaapi, ...) -> the format they produce, matched on these parts of the name.
_ENCODER_PARTS: tuple[tuple[str, str], ...] = (
    ("264", "h264"), ("265", "h265"), ("hevc", "hevc"), ("vp9", "vp9"), ("av1", "av1"),
)  # fmt: skip


def video_format(name: str) -> str | None:
    """The stream format a CompressedVideo ``format`` or an FFmpeg encoder name stands for, or None."""
    text = str(name).strip().lower()
    if text in VIDEO_CODECS:
        return text
    return next((fmt for part, fmt in _ENCODER_PARTS if part in text), None)


class VideoStreamError(ValueError):
    """A packet or stream that cannot be decoded (the message names the topic and what was found)."""


def _nal_types(data: bytes, codec: str) -> list[int]:
    """NAL unit types of an Annex B (start-code delimited) H.264/H.265 access unit."""
    types = []
    start = data.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(data):
        header = data[start + 3]
        types.append(header & 0x1F if codec == "h264" else (header >> 1) & 0x3F)
        start = data.find(b"\x00\x00\x01", start + 3)
    return types


def is_keyframe(data: bytes, codec: str) -> bool | None:
    """Whether an H.264/H.265 packet starts a decodable picture (IDR / IRAP); None for other codecs."""
    if codec == "h264":
        return 5 in _nal_types(data, codec)
    if codec == "hevc":
        return any(16 <= t <= 21 for t in _nal_types(data, codec))
    return None


class VideoStreamDecoder:
    """Decode one topic's packets, in order, to RGB frames; packets before the first keyframe are skipped."""

    def __init__(self, topic: str, fmt: str) -> None:
        import av

        name = video_format(fmt)
        if name is None:
            accepted = ", ".join(VIDEO_CODECS)
            raise VideoStreamError(
                f"{topic}: video format {fmt!r} is not supported; accepted: {accepted} "
                "(or an FFmpeg encoder name of one, e.g. libx264)"
            )
        self.topic = topic
        self.format = name
        self.codec = VIDEO_CODECS[name]
        self._context = av.CodecContext.create(self.codec, "r")
        #: Packets left out because no keyframe had arrived yet.
        self.skipped_before_keyframe = 0
        self.packets = 0
        self._started = False

    def decode(self, data: Any) -> np.ndarray | None:
        """The frame this packet completes (uint8 [H, W, 3] RGB), or None (skipped or still buffering)."""
        import av

        payload = bytes(data)
        self.packets += 1
        if not self._started:
            keyframe = is_keyframe(payload, self.codec)
            if keyframe is False:
                self.skipped_before_keyframe += 1
                return None
        try:
            frames = self._context.decode(av.Packet(payload))
        except av.error.FFmpegError as exc:
            if not self._started:  # a codec without keyframe parsing here: wait for one that decodes
                self.skipped_before_keyframe += 1
                return None
            raise VideoStreamError(
                f"{self.topic}: {self.format} packet {self.packets} cannot be decoded ({exc})"
            ) from exc
        if not frames:
            return None
        self._started = True
        return frames[-1].to_ndarray(format="rgb24")

    def check_started(self) -> None:
        """Raise if the whole stream went by without a keyframe (nothing could be decoded)."""
        if self.packets and not self._started:
            raise VideoStreamError(
                f"{self.topic}: {self.packets} {self.format} packet(s) and no keyframe to start decoding "
                "from (the recording began mid-stream and never reached a keyframe); record with a "
                "shorter keyframe interval (GOP) or start recording before the camera stream"
            )
