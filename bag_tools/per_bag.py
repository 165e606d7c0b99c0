"""Convert one bag into a dataset folder: read -> resample -> clip -> fit -> write.

The bag is streamed once (bounded memory: one clip window per camera). Every clip's video and
prompt are written atomically, then a small record under ``.convert_state/`` marks it finished, so
``--resume`` skips finished clips without decoding them. Every failure of the bag ends up in
:attr:`BagResult.error`, naming the bag, so the caller can go on with the other bags.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cosmos_ros.bag_tools.clip_writer import BackgroundWriter
from cosmos_ros.bag_tools.clips import ClipAssembler, FrameDecoder, SkippedWindow, Window
from cosmos_ros.bag_tools.convert_config import STATE_DIR, ConvertConfig
from cosmos_ros.bag_tools.dataset_format import (
    ClipRecord,
    file_sha256,
    meta_relpath,
    video_relpath,
    write_clip_files,
)
from cosmos_ros.bag_tools.prompts import compose_prompt, load_prompt_map, no_match_message, prompt_for_bag
from cosmos_ros.bag_tools.readers import (
    IMAGE_TYPES,
    VIDEO_TYPES,
    BagError,
    bag_sha256_in_background,
    describe_topics,
    header_stamp_ns,
    open_bag,
    slug,
    stream_format,
    topic_table,
)
from cosmos_ros.bag_tools.resample import GridPoint, NearestResampler

from cosmos_ros.atomic import atomic_write_text
from cosmos_ros.media.video_stream import VideoStreamDecoder, VideoStreamError


@dataclass
class BagResult:
    """What one bag gave: clips (records), skipped windows, and an error if it failed.

    ``warnings`` say what was done differently from what the bag claims (a topic left out because
    it cannot be read, receive times used for zero header stamps); ``notes`` say what was dropped.
    """

    bag: str
    sha256: str = ""
    clips: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    frames_read: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: Seconds between the first and the last camera frame read (the longest camera).
    seconds: float = 0.0


class _Episode:
    def __init__(self, number: int, t0: int, topics: Sequence[str], config: ConvertConfig) -> None:
        self.number = number
        period = 1e9 / config.fps
        self.resamplers = {t: NearestResampler(t0, period, config.tolerance_ns()) for t in topics}
        stride = config.stride or config.clip_frames
        self.assemblers = {t: ClipAssembler(config.clip_frames, stride) for t in topics}


class _BagConverter:
    def __init__(
        self,
        bag: Path,
        out: Path,
        config: ConvertConfig,
        on_frames: Callable[[int], None],
    ) -> None:
        self.bag = bag
        self.out = out
        self.config = config
        self.on_frames = on_frames
        self.result = BagResult(str(bag.resolve()))
        self.state = out / STATE_DIR

    def run(self) -> BagResult:
        cfg = self.config
        self.sha256_future = bag_sha256_in_background(self.bag)
        mapped = None
        #: Why the bag got nothing from a --prompt-map that was given (for the no-prompt error).
        self.map_miss: str | None = None
        if cfg.prompt_map:
            mapping = load_prompt_map(cfg.prompt_map)
            mapped = prompt_for_bag(mapping, self.bag)
            if mapped is None:
                self.map_miss = no_match_message(cfg.prompt_map, mapping, self.bag)
            elif not mapped:
                self.map_miss = f"its entry in --prompt-map {cfg.prompt_map} is empty"
        self.fallback_prompt = mapped if mapped is not None else cfg.prompt
        self.topic_prompt: str | None = None

        with open_bag(self.bag) as reader:
            self.topics = self._check_topics(reader)
            self.result.warnings.extend(reader.warnings)
            self.time_source = self._choose_time_source(reader)
            cache_size = 2 * cfg.clip_frames
            self.decoders = {t: FrameDecoder(self._decode, cache_size) for t in self.topics}
            # One clip may wait in the queue while the writer encodes the previous one.
            with BackgroundWriter(max_pending=1) as self.writer:
                self._read_messages(reader)
        self.result.sha256 = self.sha256_future.result()
        return self.result

    @property
    def key(self) -> str:
        """'<bag stem>-<sha256[:8]>': names the bag's clips; waits for the background hash."""
        self.result.sha256 = self.sha256_future.result()
        return f"{slug(self.bag.stem)}-{self.result.sha256[:8]}"

    def settle_sha256(self) -> None:
        """Record the bag's sha256 for the report of a failed bag, when it could be computed."""
        with contextlib.suppress(Exception):
            self.result.sha256 = self.sha256_future.result()

    def _check_topics(self, reader: Any) -> list[str]:
        """The camera topics to convert; every named topic must exist (images where images are due)."""
        cfg = self.config
        table = topic_table(reader)
        self.table = table
        topics = list(cfg.topics) or self._suggest_topic(table, reader)
        for topic in [*topics, cfg.prompt_topic, cfg.marker_topic if cfg.episode_mode == "marker" else None]:
            if topic in reader.skipped:
                raise BagError(f"bag {self.bag}: topic {reader.skipped[topic]}")
        for topic in topics:
            if topic not in table:
                raise BagError(
                    f"bag {self.bag}: topic {topic!r} not found; topics in the bag: {describe_topics(reader)}"
                )
            if table[topic][0] not in IMAGE_TYPES:
                raise BagError(
                    f"bag {self.bag}: topic {topic!r} is {table[topic][0]}, not an image; "
                    f"accepted: {', '.join(IMAGE_TYPES)}"
                )
        for extra in (cfg.prompt_topic, cfg.marker_topic if cfg.episode_mode == "marker" else None):
            if extra and extra not in table:
                raise BagError(
                    f"bag {self.bag}: topic {extra!r} not found; topics in the bag: {describe_topics(reader)}"
                )
        return topics

    def _choose_time_source(self, reader: Any) -> str:
        """'header' or 'receive': receive times when a camera's first header stamp is 0.

        Why: many drivers never fill in the header stamp; with stamps of 0 every frame after the
        first would be dropped as out of order. Receive times are then the only clock there is,
        and one clock serves every camera of the bag so that their clips stay in step.
        """
        if self.config.time_source != "header":
            return self.config.time_source
        unset = []
        for topic in self.topics:
            conns = [c for c in reader.connections if c.topic == topic]
            for conn, _, raw in reader.messages(connections=conns):
                if header_stamp_ns(reader.deserialize(raw, conn.msgtype)) == 0:
                    unset.append(topic)
                break
        if not unset:
            return "header"
        self.result.warnings.append(
            f"{', '.join(unset)}: header stamps are 0 (the camera driver does not set them), so the "
            "bag's receive times were used instead; pass --time-source receive to choose this yourself"
        )
        return "receive"

    def _decode(self, msg: Any) -> Any:
        """Message -> RGB frame fitted to the target size (runs in the writer thread)."""
        from cosmos_ros.media.frame_fit import fit_frame
        from cosmos_ros.media.ros_image import message_to_rgb

        try:  # CompressedVideo packets were decoded while reading (they depend on each other)
            rgb = msg if isinstance(msg, np.ndarray) else message_to_rgb(msg)
        except ValueError as exc:
            raise BagError(f"bag {self.bag}: {exc}") from exc
        return fit_frame(rgb, self.config.height, self.config.width, self.config.fit)

    def _read_messages(self, reader: Any) -> None:
        """Stream the bag once: prompts, markers and camera frames, in bag order."""
        cfg = self.config
        topics = self.topics
        wanted = set(topics) | {t for t in (cfg.prompt_topic, cfg.marker_topic) if t}
        conns = [c for c in reader.connections if c.topic in wanted]
        episode: _Episode | None = None
        number = -1
        last_stamp: int | None = None
        pending_frames = 0
        per_topic = dict.fromkeys(topics, 0)
        zero_stamps = dict.fromkeys(topics, 0)
        spans: dict[str, list[int]] = {}
        videos: dict[str, VideoStreamDecoder] = {}
        try:
            for conn, recv_ns, raw in reader.messages(connections=conns):
                if conn.topic == cfg.prompt_topic:
                    self.topic_prompt = str(reader.deserialize(raw, conn.msgtype).data)
                    continue
                if conn.topic == cfg.marker_topic and cfg.episode_mode == "marker":
                    if episode is not None:
                        self._finish_episode(episode)
                        episode = None
                    continue
                if conn.topic not in topics:
                    continue
                msg = reader.deserialize(raw, conn.msgtype)
                stamp = header_stamp_ns(msg) if self.time_source == "header" else int(recv_ns)
                if self.table[conn.topic][0] in VIDEO_TYPES:
                    decoder = videos.get(conn.topic)
                    if decoder is None:  # one decoder per topic, made on its first packet
                        decoder = videos[conn.topic] = VideoStreamDecoder(conn.topic, stream_format(msg))
                    msg = decoder.decode(msg.data)
                    if msg is None:  # before the first keyframe
                        continue
                self.result.frames_read += 1
                per_topic[conn.topic] += 1
                pending_frames += 1
                if pending_frames >= 16:
                    self.on_frames(pending_frames)
                    pending_frames = 0
                if stamp == 0 and self.time_source == "header":
                    zero_stamps[conn.topic] += 1
                    continue
                spans.setdefault(conn.topic, [stamp, stamp])[1] = stamp
                if episode is not None and self._new_episode(episode, last_stamp, stamp):
                    self._finish_episode(episode)
                    episode = None
                if episode is None:
                    number += 1
                    episode = _Episode(number, stamp, topics, cfg)
                    self.episode_t0 = stamp
                last_stamp = stamp
                for point in episode.resamplers[conn.topic].push(stamp, msg):
                    self._on_point(episode, conn.topic, point)
        except BagError:
            raise
        except VideoStreamError as exc:
            raise BagError(f"bag {self.bag}: {exc}") from exc
        except Exception as exc:  # damaged chunk, truncated file, bad CDR; or a failed clip write
            if exc is self.writer.error:
                raise
            raise BagError(
                f"bag {self.bag}: read failed after {self.result.frames_read} frames: {exc}"
            ) from exc
        for decoder in videos.values():
            try:
                decoder.check_started()
            except VideoStreamError as exc:
                raise BagError(f"bag {self.bag}: {exc}") from exc
            if decoder.skipped_before_keyframe:
                self.result.warnings.append(
                    f"{decoder.topic}: {decoder.skipped_before_keyframe} {decoder.format} packet(s) before "
                    "the first keyframe left out (the recording began mid-stream; nothing can decode them)"
                )
        if episode is not None:
            self._finish_episode(episode)
        self.on_frames(pending_frames)
        self.result.seconds = max(((b - a) / 1e9 for a, b in spans.values()), default=0.0)
        for topic, count in zero_stamps.items():
            if count:
                self.result.notes.append(
                    f"{topic}: {count} frame(s) with a header stamp of 0 left out; --time-source "
                    "receive uses the bag's receive times instead"
                )
        for topic, count in per_topic.items():
            if not count and self.table[topic][1]:
                raise BagError(
                    f"bag {self.bag}: topic {topic!r}: the bag's index counts {self.table[topic][1]} "
                    "message(s), but its storage files hold none of them (metadata.yaml does not "
                    "match the files); `ros2 bag reindex` rebuilds metadata.yaml from the files"
                )

    def _suggest_topic(self, table: dict[str, tuple[str, int]], reader: Any) -> list[str]:
        images = [(count, t) for t, (m, count) in table.items() if m in IMAGE_TYPES]
        if not images:
            unreadable = "".join(f"; left out: {why}" for why in reader.skipped.values())
            raise BagError(
                f"bag {self.bag}: no image topics; topics in the bag: {describe_topics(reader)}{unreadable}"
            )
        return [max(images)[1]]

    def _new_episode(self, episode: _Episode, last: int | None, stamp: int) -> bool:
        cfg = self.config
        if cfg.episode_mode == "gap" and last is not None:
            return stamp - last > cfg.episode_gap_s * 1e9
        if cfg.episode_mode == "window":
            return stamp - self.episode_t0 >= cfg.episode_window_s * 1e9
        return False

    def _finish_episode(self, episode: _Episode) -> None:
        for topic, resampler in episode.resamplers.items():
            for point in resampler.finish():
                self._on_point(episode, topic, point)
            if resampler.out_of_order:
                self.result.notes.append(
                    f"{topic} episode {episode.number}: {resampler.out_of_order} frame(s) dropped "
                    f"(stamp not after the previous one)"
                )

    def _on_point(self, episode: _Episode, topic: str, point: GridPoint) -> None:
        outcome = episode.assemblers[topic].push(point)
        if outcome is None:
            return
        if isinstance(outcome, SkippedWindow):
            self.result.skipped.append(
                {
                    "topic": topic,
                    "episode": episode.number,
                    "window": outcome.index,
                    "start_ns": outcome.start_ns,
                    "end_ns": outcome.end_ns,
                    "missing_frames": outcome.missing,
                    "reason": self._skip_reason(outcome),
                }
            )
            return
        self._write_clip(episode, topic, outcome)

    def _skip_reason(self, skipped: SkippedWindow) -> str:
        if skipped.duplicate_of is not None:
            return (
                f"duplicate: the same source frames as window {skipped.duplicate_of} (the camera "
                f"gives fewer frames than {self.config.fps:g} fps needs)"
            )
        return (
            f"gap: {skipped.missing} of {self.config.clip_frames} output frames had no source frame "
            f"within {self.config.tolerance_ns() / 1e6:g} ms"
        )

    def _write_clip(self, episode: _Episode, topic: str, window: Window) -> None:
        """Queue a complete window for the writer thread (or reuse a finished clip's record)."""
        group = f"{self.key}-e{episode.number:03d}-w{window.index:04d}"
        clip_id = f"{group}-{slug(topic)}"
        record_path = self.state / "clips" / f"{clip_id}.json"
        if record_path.is_file():
            record = json.loads(record_path.read_text(encoding="utf-8"))
            # Through the writer too, so records keep the order of a clean run.
            self.writer.submit(lambda: self.result.clips.append(record))
            return
        raw_prompt = self.topic_prompt if self.topic_prompt else self.fallback_prompt
        prompt = compose_prompt(raw_prompt, self.config.prompt_prefix)
        if not prompt and not self.config.allow_empty_prompt:
            if self.map_miss and not (raw_prompt or "").strip():
                raise BagError(
                    f"bag {self.bag}: clip {clip_id} has no prompt: {self.map_miss}; add the bag to the "
                    f"map, or give --prompt (used for bags the map does not name), --prompt-topic, or "
                    f"pass --allow-empty-prompt"
                )
            raise BagError(
                f"bag {self.bag}: clip {clip_id} has no prompt; give --prompt, --prompt-map or "
                f"--prompt-topic, or pass --allow-empty-prompt"
            )
        episode_id = f"{self.key}-e{episode.number:03d}"
        self.writer.submit(
            functools.partial(self._write_new_clip, clip_id, group, episode_id, topic, window, prompt)
        )

    def _write_new_clip(
        self, clip_id: str, group: str, episode_id: str, topic: str, window: Window, prompt: str
    ) -> None:
        """Decode, fit and encode one clip, then mark it finished (runs in the writer thread)."""
        cfg = self.config
        frames = self.decoders[topic].frames(window)
        write_clip_files(self.out, clip_id, frames, cfg.fps, prompt)
        record = ClipRecord(
            clip_id=clip_id,
            video=video_relpath(clip_id),
            meta=meta_relpath(clip_id),
            prompt=prompt,
            frame_count=len(frames),
            height=cfg.height,
            width=cfg.width,
            fps=cfg.fps,
            source_bag=self.result.bag,
            source_bag_sha256=self.result.sha256,
            topic=topic,
            start_stamp_ns=int(window.points[0].source_stamp_ns or 0),
            end_stamp_ns=int(window.points[-1].source_stamp_ns or 0),
            clip_group=group,
            episode=episode_id,
            video_sha256=file_sha256(self.out / video_relpath(clip_id)),
            extra={"source_stamps_ns": [int(p.source_stamp_ns or 0) for p in window.points]},
        )
        data = json.loads(record.to_json())
        atomic_write_text(self.state / "clips" / f"{clip_id}.json", json.dumps(data, sort_keys=True))
        self.result.clips.append(data)


def convert_bag(
    bag: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: ConvertConfig,
    on_frames: Callable[[int], None] | None = None,
) -> BagResult:
    """Convert one bag into ``out`` (clips + state records); errors end up in ``result.error``."""
    bag = Path(bag)
    out = Path(out)
    state = out / STATE_DIR / "bags"
    converter = _BagConverter(bag, out, config, on_frames or (lambda n: None))
    try:
        result = converter.run()
    except (BagError, OSError, ValueError) as exc:
        converter.settle_sha256()
        result = converter.result
        result.error = str(exc) if str(bag) in str(exc) else f"bag {bag}: {exc}"
        return result
    atomic_write_text(state / f"{converter.key}.json", json.dumps(asdict(result), sort_keys=True))
    return result
