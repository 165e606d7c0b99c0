"""Convert bags into a dataset folder: read -> resample -> clip -> fit -> write.

Each bag is streamed once (bounded memory: one clip window per camera). Every clip's video and
prompt are written atomically, then a small record under ``.convert_state/`` marks it finished;
``--resume`` skips finished clips (without decoding them) and finished bags, and a kill at any
moment leaves only finished files plus temporary ``*.part`` names that the next run removes. A bag
that finished may be left out of (or missing on) the resume: its clips and records stay in use.
manifest.jsonl and dataset.yaml are (re)written at the end from the records, so a resumed run
gives the same dataset as one clean run; until then the folder reads as an interrupted conversion
(:func:`~cosmos_ros.bag_tools.dataset_format.load_dataset` refuses it).

Every path is checked before anything is created: a missing bag (a typo) stops the run up front,
naming each; on ``--resume`` only bags whose conversion did not finish are needed. A bag that exists
but fails (truncated, a damaged chunk, a missing topic, no prompt) is reported while the others
convert, and dataset.yaml records it: one bad recording never costs the good ones. When every bag
fails, no dataset is left behind.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cosmos_ros.bag_tools.clip_writer import BackgroundWriter
from cosmos_ros.bag_tools.clips import ClipAssembler, FrameDecoder, SkippedWindow, Window, check_clip_length
from cosmos_ros.bag_tools.dataset_format import (
    CONVERT_STATE_DIR,
    DATASET_YAML_NAME,
    MANIFEST_NAME,
    SPLITS,
    ClipRecord,
    DatasetInfo,
    meta_relpath,
    video_relpath,
    write_clip_files,
    write_dataset,
)
from cosmos_ros.bag_tools.prompts import compose_prompt, load_prompt_map, no_match_message, prompt_for_bag
from cosmos_ros.bag_tools.readers import (
    IMAGE_TYPES,
    TIME_SOURCES,
    BagError,
    bag_sha256_in_background,
    describe_topics,
    header_stamp_ns,
    open_bag,
    slug,
    topic_table,
)
from cosmos_ros.bag_tools.resample import GridPoint, NearestResampler

from cosmos_ros import __version__
from cosmos_ros.atomic import atomic_write_text
from cosmos_ros.progress import ProgressCallback, Stopwatch
from cosmos_ros.typed_fields import FieldTypeError, coerce

log = logging.getLogger(__name__)

STATE_DIR = CONVERT_STATE_DIR
#: Height and width must be multiples of this: the model's VAE (8x) and patching (2x) need it,
#: as do training (training/config.py) and generation (cosmos_ros/model/runtime.py).
SIZE_MULTIPLE = 16
RESOLUTION_PRESETS: dict[str, tuple[int, int]] = {"432x768": (432, 768), "704x1280": (704, 1280)}
EPISODE_MODES: tuple[str, ...] = ("bag", "gap", "marker", "window")


class ConvertError(RuntimeError):
    """A conversion that cannot start (bad parameters, output folder in the way)."""


@dataclass
class ConvertConfig:
    """Every conversion parameter; all of them are recorded in dataset.yaml."""

    topics: list[str] = field(default_factory=list)
    fps: float = 16.0
    clip_frames: int = 93
    #: Output frames between clip starts; None = clip_frames (back to back, no overlap).
    stride: int | None = None
    height: int = 432
    width: int = 768
    fit: str = "crop"
    time_source: str = "header"
    #: Max distance between a grid time and its source frame; default one output frame period.
    tolerance_ms: float | None = None
    episode_mode: str = "bag"
    episode_gap_s: float = 2.0
    marker_topic: str | None = None
    episode_window_s: float = 60.0
    prompt: str | None = None
    prompt_map: str | None = None
    prompt_topic: str | None = None
    prompt_prefix: str = ""
    allow_empty_prompt: bool = False
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def tolerance_ns(self) -> int:
        ms = self.tolerance_ms if self.tolerance_ms is not None else 1000.0 / self.fps
        return round(ms * 1e6)

    def check(self) -> None:
        """Raise :class:`ConvertError` naming every bad parameter; makes whole-number floats floats.

        Why the float step: fps 16 from YAML and 16.0 from a flag must record the same parameters,
        or ``--resume`` would see different runs.
        """
        problems = config_type_problems(asdict(self))
        if problems:
            raise ConvertError("; ".join(problems))
        for f in fields(self):  # the types were checked above: this only widens ints to floats
            setattr(self, f.name, coerce(str(f.type), getattr(self, f.name)))
        check_clip_length(self.clip_frames)
        problems = []
        if self.fps <= 0:
            problems.append(f"fps must be > 0, got {self.fps}")
        if self.stride is not None and self.stride < 1:
            problems.append(f"stride must be >= 1, got {self.stride}")
        off = [
            f"{name} {value}"
            for name, value in (("height", self.height), ("width", self.width))
            if value < SIZE_MULTIPLE or value % SIZE_MULTIPLE
        ]
        if off:
            near = "x".join(
                str(max(SIZE_MULTIPLE, round(v / SIZE_MULTIPLE) * SIZE_MULTIPLE))
                for v in (self.height, self.width)
            )
            problems.append(
                f"resolution {self.height}x{self.width} (HEIGHTxWIDTH): {' and '.join(off)} "
                f"{'are not positive multiples' if len(off) > 1 else 'is not a positive multiple'} of "
                f"{SIZE_MULTIPLE}, which the model and the trainer need; accepted: multiples of "
                f"{SIZE_MULTIPLE} such as 432x768 or 704x1280 (nearest: {near})"
            )
        if self.fit not in ("crop", "letterbox"):
            problems.append(f"fit must be crop or letterbox, got {self.fit!r}")
        if self.time_source not in TIME_SOURCES:
            problems.append(f"time source must be one of {', '.join(TIME_SOURCES)}, got {self.time_source!r}")
        if self.episode_mode not in EPISODE_MODES:
            problems.append(
                f"episode mode must be one of {', '.join(EPISODE_MODES)}, got {self.episode_mode!r}"
            )
        if self.episode_mode == "marker" and not self.marker_topic:
            problems.append("episode mode 'marker' needs a marker topic")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1):
            problems.append("val/test fractions must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            problems.append("val + test fractions must leave some training data (< 1)")
        if problems:
            raise ConvertError("; ".join(problems))


def config_type_problems(values: Mapping[str, Any]) -> list[str]:
    """'key: value is not accepted; expected ...' for each value of the wrong type (unknown keys skipped).

    Why: values from YAML arrive untyped; a string where a number belongs must be named here, not
    surface later as a TypeError deep inside the conversion.
    """
    declared = {f.name: str(f.type) for f in fields(ConvertConfig)}
    problems = []
    for name, value in values.items():
        if name not in declared:
            continue
        try:
            coerce(declared[name], value)
        except FieldTypeError as exc:
            problems.append(f"{name}: {value!r} is not accepted; expected {exc.accepted}")
    return problems


@dataclass
class BagResult:
    """What one bag gave: clips (records), skipped windows, and an error if it failed."""

    bag: str
    sha256: str = ""
    clips: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    frames_read: int = 0
    error: str | None = None


@dataclass
class ConvertReport:
    output: Path
    clips: list[ClipRecord]
    bags: list[BagResult]
    seconds: float
    frames_read: int

    @property
    def failed(self) -> list[BagResult]:
        return [b for b in self.bags if b.error]


# --------------------------------------------------------------------------------------------
# One bag


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
        topics = list(cfg.topics) or self._suggest_topic(table, reader)
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

    def _decode(self, msg: Any) -> Any:
        """Message -> RGB frame fitted to the target size (runs in the writer thread)."""
        from cosmos_ros.media.frame_fit import fit_frame
        from cosmos_ros.media.ros_image import message_to_rgb

        try:
            rgb = message_to_rgb(msg)
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
                stamp = header_stamp_ns(msg) if cfg.time_source == "header" else int(recv_ns)
                self.result.frames_read += 1
                pending_frames += 1
                if pending_frames >= 16:
                    self.on_frames(pending_frames)
                    pending_frames = 0
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
        except Exception as exc:  # damaged chunk, truncated file, bad CDR; or a failed clip write
            if exc is self.writer.error:
                raise
            raise BagError(
                f"bag {self.bag}: read failed after {self.result.frames_read} frames: {exc}"
            ) from exc
        if episode is not None:
            self._finish_episode(episode)
        self.on_frames(pending_frames)

    def _suggest_topic(self, table: dict[str, tuple[str, int]], reader: Any) -> list[str]:
        images = [(count, t) for t, (m, count) in table.items() if m in IMAGE_TYPES]
        if not images:
            raise BagError(f"bag {self.bag}: no image topics; topics in the bag: {describe_topics(reader)}")
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
                    "reason": f"gap: {outcome.missing} of {self.config.clip_frames} output frames "
                    f"had no source frame within {self.config.tolerance_ns() / 1e6:g} ms",
                }
            )
            return
        self._write_clip(episode, topic, outcome)

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


# --------------------------------------------------------------------------------------------
# Many bags, one dataset


def assign_splits(
    episodes: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, str]:
    """Deterministic episode -> split; an episode is never split across train/val/test."""
    ordered = sorted(set(episodes))
    random.Random(seed).shuffle(ordered)
    n_val = int(len(ordered) * val_fraction + 0.5)
    n_test = int(len(ordered) * test_fraction + 0.5)
    if n_val + n_test >= len(ordered) and len(ordered) > 0:
        n_val = min(n_val, max(len(ordered) - 1, 0))
        n_test = min(n_test, max(len(ordered) - 1 - n_val, 0))
    splits = {}
    for i, episode in enumerate(ordered):
        splits[episode] = "val" if i < n_val else ("test" if i < n_val + n_test else "train")
    return splits


def _clean_partial_files(out: Path) -> None:
    """Remove temporary names a killed run left behind (atomic writes never finished)."""
    for part in out.rglob(".*.part"):
        if part.is_dir():
            shutil.rmtree(part, ignore_errors=True)
        else:
            part.unlink(missing_ok=True)


def _prepare_output(out: Path, params: dict[str, Any], resume: bool, overwrite: bool) -> None:
    """Make ``out`` ready to write; a --resume folder must have passed :func:`_resume_plan` first."""
    params_file = out / STATE_DIR / "parameters.json"
    params_text = json.dumps(params, sort_keys=True, indent=1)
    if out.exists() and not out.is_dir():
        raise ConvertError(f"output {out} is a file; give a folder path for the dataset")
    if out.exists() and any(out.iterdir()):
        if resume:
            _clean_partial_files(out)
            # Until this run writes them anew, the folder must read as unfinished, not as the old result.
            for name in (DATASET_YAML_NAME, MANIFEST_NAME):
                (out / name).unlink(missing_ok=True)
        elif overwrite:
            known = {STATE_DIR, "videos", "metas", MANIFEST_NAME, DATASET_YAML_NAME}
            strangers = sorted(p.name for p in out.iterdir() if p.name not in known)
            if strangers:
                raise ConvertError(
                    f"{out}: --overwrite refuses to delete a folder that holds other things: "
                    f"{', '.join(strangers[:5])}"
                )
            shutil.rmtree(out)
        else:
            raise ConvertError(
                f"output folder {out} exists; pass --resume to continue it or --overwrite to replace it"
            )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(params_file, params_text)


def _options_text(params: Mapping[str, Any]) -> str:
    """The parameters other than the bag list, as comparable text."""
    return json.dumps({k: v for k, v in params.items() if k != "bags"}, sort_keys=True)


def _resume_plan(out: Path, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, BagResult]]:
    """The parameters to record and the finished bags of the run in ``out`` that --resume continues.

    It only reads, so a refusal leaves ``out`` as it was. Why the bags compare as a set in which
    finished bags are optional: a user may delete or move bags whose clips are already in ``out`` (to
    free disk space) and must still be able to finish the run. Options that differ, a bag the run did
    not have, or a bag left out whose conversion did not finish would give another dataset than the
    run that was started, so those are refused. The started run's parameters (all of its bags) are
    what gets recorded, as a clean run would have recorded them.
    """
    params_file = out / STATE_DIR / "parameters.json"
    if not params_file.is_file():
        raise ConvertError(f"{out}: not a conversion this tool started ({params_file} missing)")
    again = "use --overwrite to start again"
    try:
        started = json.loads(params_file.read_text(encoding="utf-8"))
        started_bags = [str(b) for b in started["bags"]]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConvertError(f"{out}: cannot read {params_file} ({exc}); {again}") from exc
    added = [b for b in params["bags"] if b not in started_bags]
    if _options_text(started) != _options_text(params) or added:
        extra = f": bag(s) {', '.join(added)} were not part of it" if added else ""
        raise ConvertError(
            f"{out}: --resume with different parameters than the run that started it{extra} "
            f"(see {params_file}); {again}"
        )
    finished: dict[str, BagResult] = {}
    for file in sorted((out / STATE_DIR / "bags").glob("*.json")):
        data = json.loads(file.read_text(encoding="utf-8"))
        finished[data["bag"]] = BagResult(**data)
    left_out = [b for b in started_bags if b not in params["bags"] and b not in finished]
    if left_out:
        raise ConvertError(
            f"{out}: --resume needs bag(s) {', '.join(left_out)} of the run that started it, because "
            f"their conversion did not finish (only finished bags may be left out); give them again, "
            f"or {again}; nothing was written"
        )
    return {**params, "bags": started_bags}, finished  # the key order of a clean run's dataset.yaml


def _preflight(bags: Sequence[Path], topics: Sequence[str], resuming: Path | None = None) -> int:
    """Check every path before anything is created; returns the camera frames for the progress bar.

    Why: a typo in one path must not cost a half-built output folder (or hours of converting the
    other bags first), so every missing bag is named at once. A bag that exists but cannot be
    opened is left to its own conversion, which records it as failed while the others convert.
    ``resuming`` (the folder of a started run, whose finished bags are not passed here) only
    changes the message: a missing bag is then one whose conversion did not finish.
    """
    missing: list[str] = []
    total = 0
    for bag in bags:
        if not bag.exists():
            missing.append(str(bag))
            continue
        try:
            with open_bag(bag) as reader:
                table = topic_table(reader)
        except BagError as exc:
            log.warning("%s (it will be reported as failed; the other bags still convert)", exc)
            continue
        if topics:
            total += sum(table[t][1] for t in topics if t in table)
        else:
            total += max((c for m, c in table.values() if m in IMAGE_TYPES), default=0)
    if missing:
        why = (
            f"; --resume needs them because their conversion in {resuming} did not finish (only "
            "finished bags may be missing)"
            if resuming
            else ""
        )
        raise ConvertError(
            f"bag(s) not found: {', '.join(missing)}{why}; accepted: ROS 1 .bag files and ROS 2 bag "
            "folders (holding metadata.yaml); nothing was written"
        )
    return total


def _remove_output(out: Path, existed: bool) -> None:
    """Undo what this run created in ``out`` (keeping a folder that was there, empty, before)."""
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in out.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


_worker_queue: Any = None


def _worker_init(queue: Any) -> None:
    global _worker_queue
    _worker_queue = queue


def _worker_convert(bag: str, out: str, config: ConvertConfig) -> BagResult:
    return convert_bag(bag, out, config, on_frames=lambda n: _worker_queue.put(n) if n else None)


def convert_bags(
    bags: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    config: ConvertConfig,
    *,
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> ConvertReport:
    """Convert ``bags`` into the dataset folder ``output``; see the module docstring."""
    config.check()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConvertError(f"workers must be an integer >= 1 (1 = convert in this process), got {workers!r}")
    if not bags:
        raise ConvertError("no bags given")
    bag_paths = [Path(b) for b in bags]
    resolved = [str(p.resolve()) for p in bag_paths]
    if len(set(resolved)) != len(resolved):
        raise ConvertError("the same bag is given twice")
    if config.prompt_map:
        load_prompt_map(config.prompt_map)  # a missing or malformed map stops the run before it starts
    started = time.monotonic()
    out = Path(output)
    params: dict[str, Any] = {"bags": resolved, **asdict(config)}
    continuing = resume and out.is_dir() and any(out.iterdir())
    finished: dict[str, BagResult] = {}
    if continuing:
        params, finished = _resume_plan(out, params)
    todo = [p for p, r in zip(bag_paths, resolved, strict=True) if r not in finished]
    total = _preflight(todo, config.topics, out if continuing else None)
    total += sum(r.frames_read for r in finished.values())
    # What a failed run may remove: only what it created (never a --resume folder's earlier work).
    created_here = not continuing
    existed = out.is_dir()
    _prepare_output(out, params, resume, overwrite)

    watch = Stopwatch(progress, "convert", total)
    done_frames = 0

    def on_frames(n: int) -> None:
        nonlocal done_frames
        done_frames += n
        elapsed = max(time.monotonic() - started, 1e-6)
        watch.report(done_frames, frames_per_s=done_frames / elapsed)

    for result in finished.values():
        on_frames(result.frames_read)

    results: list[BagResult] = list(finished.values())
    if workers <= 1 or len(todo) <= 1:
        for bag in todo:
            results.append(convert_bag(bag, out, config, on_frames))
    else:
        import multiprocessing as mp
        import queue as queue_mod
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")
        frames_queue = ctx.Queue()
        with ProcessPoolExecutor(
            max_workers=min(workers, len(todo)),
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(frames_queue,),
        ) as pool:
            futures = [pool.submit(_worker_convert, str(b), str(out), config) for b in todo]
            while not all(f.done() for f in futures):
                try:
                    on_frames(frames_queue.get(timeout=0.2))
                except queue_mod.Empty:
                    pass
            results.extend(f.result() for f in futures)
    results.sort(key=lambda r: r.bag)
    if results and all(r.error for r in results):
        errors = "".join(f"\n  {r.error}" for r in results)
        if created_here:
            _remove_output(out, existed and not overwrite)
            left = f"removed what this run wrote to {out}"
        else:
            left = f"{out} keeps its {STATE_DIR}/ for a later --resume"
        raise ConvertError(
            f"no bag converted ({len(results)} failed), so no dataset was written; {left}:{errors}"
        )

    episodes = [c["episode"] for r in results for c in r.clips]
    splits = assign_splits(episodes, config.val_fraction, config.test_fraction, config.seed)
    records = [ClipRecord.from_dict({**c, "split": splits[c["episode"]]}) for r in results for c in r.clips]
    report = {
        "bags": [
            {
                "bag": r.bag,
                "sha256": r.sha256,
                "clips": len(r.clips),
                "frames_read": r.frames_read,
                "skipped_windows": r.skipped,
                "notes": r.notes,
                "error": r.error,
            }
            for r in results
        ]
    }
    summary = {
        "clips": len(records),
        "episodes": len(set(episodes)),
        "splits": {s: sum(r.split == s for r in records) for s in SPLITS},
        "failed_bags": sum(bool(r.error) for r in results),
    }
    info = DatasetInfo(tool_version=__version__, parameters=params, summary=summary, report=report)
    write_dataset(out, records, info)
    return ConvertReport(out, records, results, time.monotonic() - started, done_frames)
