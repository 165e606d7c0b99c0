"""The dataset folder contract: the ONE module that reads and writes it.

A dataset folder holds::

    videos/<clip_id>.mp4     H.264, uint8 RGB, ``frame_count`` frames of ``height`` x ``width``
    metas/<clip_id>.txt      the clip's prompt (one line of UTF-8 text)
    manifest.jsonl           one JSON object per clip (:class:`ClipRecord`), sorted by clip_id
    dataset.yaml             schema version, tool version, every conversion parameter, report

``videos/`` + ``metas/`` is the layout the published LoRA recipe and diffusers' example read, so a
dataset written here trains there unchanged; the manifest adds provenance (source bag and its
sha256, topic, stamps) and the train/val/test split. :func:`load_dataset` also reads the plain
recipe layout (``videos/*.mp4`` + ``metas/*.txt``, no manifest): every clip is then ``train``.
A folder that holds ``.convert_state/`` but no manifest.jsonl or dataset.yaml is an interrupted
conversion, not the plain layout, and is refused (its clips are only the first part of the data).

The trainer and the evaluation read datasets ONLY through :func:`load_dataset`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cosmos_ros.atomic import atomic_write_text

#: Version of the folder contract; bumped when a reader of the old layout would misread the new.
SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.jsonl"
DATASET_YAML_NAME = "dataset.yaml"
VIDEOS_DIR = "videos"
METAS_DIR = "metas"
#: Where ``bags convert`` keeps its per-clip and per-bag records; its presence without a manifest
#: means the conversion never finished.
CONVERT_STATE_DIR = ".convert_state"
SPLITS: tuple[str, ...] = ("train", "val", "test")


class DatasetFormatError(ValueError):
    """A dataset folder that breaks the contract (names the file, line and field at fault)."""


@dataclass(frozen=True)
class ClipRecord:
    """One clip of a dataset: a line of manifest.jsonl. Paths are relative to the dataset root."""

    clip_id: str
    video: str
    meta: str
    prompt: str
    frame_count: int
    height: int
    width: int
    fps: float
    split: str = "train"
    source_bag: str = ""
    source_bag_sha256: str = ""
    topic: str = ""
    start_stamp_ns: int = 0
    end_stamp_ns: int = 0
    clip_group: str = ""
    episode: str = ""
    #: sha256 of the video file as written, so ``validate`` tells a replaced or swapped video from
    #: the right one (frame count and size alike cannot); "" in datasets made before it was recorded.
    video_sha256: str = ""
    #: Manifest fields this version does not know (kept so a round trip loses nothing).
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> str:
        """One canonical manifest line (sorted keys, no spaces), so equal records hash equally."""
        data = asdict(self)
        extra = data.pop("extra")
        data.update(extra)
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest") -> ClipRecord:
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        required = ("clip_id", "video", "meta", "prompt", "frame_count", "height", "width", "fps")
        missing = [name for name in required if name not in data]
        if missing:
            raise DatasetFormatError(f"{where}: missing field(s) {', '.join(missing)}")
        kwargs: dict[str, Any] = {}
        for name in known:
            if name in data:
                kwargs[name] = data[name]
        try:
            for name in ("frame_count", "height", "width", "start_stamp_ns", "end_stamp_ns"):
                if name in kwargs:
                    kwargs[name] = int(kwargs[name])
            kwargs["fps"] = float(kwargs["fps"])
        except (TypeError, ValueError) as exc:
            raise DatasetFormatError(f"{where}: a numeric field holds a non-number: {exc}") from exc
        if kwargs.get("split", "train") not in SPLITS:
            raise DatasetFormatError(f"{where}: split {kwargs['split']!r} is not one of {', '.join(SPLITS)}")
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra)


@dataclass
class DatasetInfo:
    """The contents of dataset.yaml: how the dataset was made."""

    schema_version: int = SCHEMA_VERSION
    tool: str = "cosmos-ros bags convert"
    tool_version: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(asdict(self), sort_keys=False, allow_unicode=True, width=100)

    @classmethod
    def from_yaml(cls, text: str, where: str = DATASET_YAML_NAME) -> DatasetInfo:
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise DatasetFormatError(f"{where}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise DatasetFormatError(f"{where}: expected a mapping at the top level")
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise DatasetFormatError(f"{where}: schema_version missing or not an integer")
        if version > SCHEMA_VERSION:
            raise DatasetFormatError(
                f"{where}: schema_version {version} is newer than this cosmos_ros reads "
                f"({SCHEMA_VERSION}); upgrade cosmos_ros"
            )
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Dataset:
    """A loaded dataset folder: its clips (sorted by clip_id) and how it was made."""

    root: Path
    clips: list[ClipRecord]
    info: DatasetInfo | None
    #: sha256 of the canonical manifest text: identifies the exact clip list a model saw.
    manifest_sha256: str
    #: False for the plain recipe layout (videos/ + metas/ only).
    has_manifest: bool = True

    def split(self, name: str) -> list[ClipRecord]:
        """The clips of one split (``train``, ``val`` or ``test``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; accepted: {', '.join(SPLITS)}")
        return [clip for clip in self.clips if clip.split == name]

    def groups(self) -> dict[str, list[ClipRecord]]:
        """Clips by clip_group: the views of one moment from several cameras."""
        out: dict[str, list[ClipRecord]] = {}
        for clip in self.clips:
            out.setdefault(clip.clip_group or clip.clip_id, []).append(clip)
        return out

    def video_path(self, clip: ClipRecord) -> Path:
        return self.root / clip.video

    def meta_path(self, clip: ClipRecord) -> Path:
        return self.root / clip.meta

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[ClipRecord]:
        return iter(self.clips)


def video_relpath(clip_id: str) -> str:
    return f"{VIDEOS_DIR}/{clip_id}.mp4"


def meta_relpath(clip_id: str) -> str:
    return f"{METAS_DIR}/{clip_id}.txt"


def manifest_text(records: Iterable[ClipRecord]) -> str:
    """The canonical manifest: records sorted by clip_id, one canonical JSON line each."""
    ordered = sorted(records, key=lambda r: r.clip_id)
    ids = [r.clip_id for r in ordered]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise DatasetFormatError(f"duplicate clip_id(s) in manifest: {', '.join(dupes[:5])}")
    return "".join(r.to_json() + "\n" for r in ordered)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_clip_files(
    root: str | os.PathLike[str], clip_id: str, frames: Any, fps: float, prompt: str
) -> None:
    """Write one clip's video and prompt, each atomically (video first, so a meta implies a video)."""
    from cosmos_ros.media.video import write_video

    root = Path(root)
    write_video(root / video_relpath(clip_id), frames, fps)
    atomic_write_text(root / meta_relpath(clip_id), prompt.strip() + "\n")


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(root: str | os.PathLike[str], records: Iterable[ClipRecord]) -> str:
    """Write manifest.jsonl atomically; returns its sha256."""
    text = manifest_text(records)
    atomic_write_text(Path(root) / MANIFEST_NAME, text)
    return sha256_text(text)


def write_dataset_info(root: str | os.PathLike[str], info: DatasetInfo) -> None:
    atomic_write_text(Path(root) / DATASET_YAML_NAME, info.to_yaml())


def write_dataset(root: str | os.PathLike[str], records: Iterable[ClipRecord], info: DatasetInfo) -> Dataset:
    """Write manifest.jsonl and dataset.yaml for clips whose files are already written."""
    root = Path(root)
    records = sorted(records, key=lambda r: r.clip_id)
    digest = write_manifest(root, records)
    write_dataset_info(root, info)
    return Dataset(root, records, info, digest, True)


def read_manifest(path: str | os.PathLike[str]) -> tuple[list[ClipRecord], str]:
    """Parse manifest.jsonl; returns the records (sorted by clip_id) and the file's sha256."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    records: list[ClipRecord] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"{where}: not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise DatasetFormatError(f"{where}: expected a JSON object")
        records.append(ClipRecord.from_dict(data, where))
    records.sort(key=lambda r: r.clip_id)
    return records, sha256_text(text)


def _load_plain_layout(root: Path, probe: bool) -> Dataset:
    from cosmos_ros.media.video import probe_video

    videos = sorted((root / VIDEOS_DIR).glob("*.mp4"))
    if not videos:
        raise DatasetFormatError(
            f"{root}: no {MANIFEST_NAME} and no {VIDEOS_DIR}/*.mp4; not a dataset folder"
        )
    records = []
    for video in videos:
        meta = root / METAS_DIR / f"{video.stem}.txt"
        if not meta.is_file():
            raise DatasetFormatError(f"{video}: no prompt file {meta}")
        prompt = meta.read_text(encoding="utf-8").strip()
        if probe:
            vinfo = probe_video(video)
            count, height, width, fps = vinfo.frame_count, vinfo.height, vinfo.width, vinfo.fps
        else:
            count, height, width, fps = 0, 0, 0, 0.0
        records.append(
            ClipRecord(
                clip_id=video.stem,
                video=video_relpath(video.stem),
                meta=meta_relpath(video.stem),
                prompt=prompt,
                frame_count=count,
                height=height,
                width=width,
                fps=fps,
                clip_group=video.stem,
                episode=video.stem,
            )
        )
    return Dataset(root, records, None, sha256_text(manifest_text(records)), has_manifest=False)


def _refuse_interrupted_conversion(root: Path) -> None:
    """Why: an interrupted ``bags convert`` leaves videos/ + metas/ under their final names, which
    would otherwise read as the plain recipe layout holding a silent fraction of the data."""
    if not (root / CONVERT_STATE_DIR).exists():
        return
    # write_dataset writes manifest.jsonl then dataset.yaml: both present = the run finished.
    missing = [name for name in (MANIFEST_NAME, DATASET_YAML_NAME) if not (root / name).is_file()]
    if missing:
        raise DatasetFormatError(
            f"{root}: an interrupted conversion (no {' or '.join(missing)}; {CONVERT_STATE_DIR}/ is "
            f"there); finish it with `cosmos-ros bags convert ... -o {root} --resume`, the same options "
            f"and every bag whose conversion did not finish (recorded in "
            f"{root / CONVERT_STATE_DIR / 'parameters.json'}), or start again with --overwrite"
        )


def load_dataset(root: str | os.PathLike[str], *, probe_plain: bool = True) -> Dataset:
    """Load a dataset folder (with manifest, or the plain recipe layout).

    For the plain layout every clip is ``train`` and, with ``probe_plain``, each video is decoded
    once to learn its frame count, size and fps (without it those fields are 0).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    manifest = root / MANIFEST_NAME
    _refuse_interrupted_conversion(root)
    if not manifest.is_file():
        return _load_plain_layout(root, probe_plain)
    records, digest = read_manifest(manifest)
    info_path = root / DATASET_YAML_NAME
    info = None
    if info_path.is_file():
        info = DatasetInfo.from_yaml(info_path.read_text(encoding="utf-8"), str(info_path))
    return Dataset(root, records, info, digest, True)
