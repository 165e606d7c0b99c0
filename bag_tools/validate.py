"""Check a dataset folder: every video is the one its manifest entry records (its sha256 where
recorded; frame count, size and rate always), prompts exist, the manifest and the files on disk
agree, no entry points outside the folder or repeats another, and no value is impossible.

Problems make a dataset unusable as it stands (wrong videos, missing prompts, an interrupted
conversion). Bags whose conversion failed (``summary.failed_bags`` in dataset.yaml) are
*warnings*: the clips present are sound and train fine, but the dataset lacks those bags' data,
which the user should know before training on it.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmos_ros.bag_tools.dataset_format import (
    METAS_DIR,
    VIDEOS_DIR,
    ClipRecord,
    DatasetFormatError,
    file_sha256,
    load_dataset,
)

from cosmos_ros.progress import ProgressCallback, Stopwatch


@dataclass
class ValidationResult:
    """What :func:`check_dataset` found: problems (the dataset is not sound) and warnings (it is)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def validate_dataset(root: str | os.PathLike[str], progress: ProgressCallback | None = None) -> list[str]:
    """Return a list of problems (empty when the dataset is sound); see :func:`check_dataset` for warnings."""
    return check_dataset(root, progress).problems


def _failed_bag_warnings(dataset: Any) -> list[str]:
    """One warning per bag that dataset.yaml records as failed (the dataset is missing its clips)."""
    if dataset.info is None:
        return []
    bags = [b for b in dataset.info.report.get("bags") or [] if isinstance(b, dict)]
    failed = [b for b in bags if b.get("error")]
    out = [
        f"{dataset.root}: bag {b.get('bag')} failed to convert, so its clips are missing: {b['error']}"
        for b in failed
    ]
    recorded = dataset.info.summary.get("failed_bags") or 0
    if isinstance(recorded, int) and recorded > len(failed):
        out.append(f"{dataset.root}: dataset.yaml records {recorded} failed bag(s) without details")
    return out


def _inside(root: Path, rel: str) -> bool:
    """True when the manifest path ``rel`` names a file inside the dataset folder ``root``."""
    if not rel or Path(rel).is_absolute():
        return False
    return (root / rel).resolve().is_relative_to(root.resolve())


def _value_problems(clip: ClipRecord) -> list[str]:
    """Values no clip can have: a frame rate <= 0, sizes < 1, stamps out of order, ..."""
    cid, out = clip.clip_id, []
    if not math.isfinite(clip.fps) or clip.fps <= 0:
        out.append(f"{cid}: fps {clip.fps:g} is impossible; accepted: a number > 0")
    if clip.frame_count < 1 or (clip.frame_count - 1) % 4:
        out.append(f"{cid}: frame_count {clip.frame_count} is not 4k+1 (1, 5, 9, ...)")
    for name in ("height", "width"):
        if getattr(clip, name) < 1:
            out.append(f"{cid}: {name} {getattr(clip, name)} is impossible; accepted: an integer >= 1")
    if clip.start_stamp_ns < 0 or clip.end_stamp_ns < clip.start_stamp_ns:
        out.append(
            f"{cid}: start_stamp_ns {clip.start_stamp_ns} / end_stamp_ns {clip.end_stamp_ns} are "
            "impossible; accepted: 0 <= start <= end"
        )
    stamps = clip.extra.get("source_stamps_ns")
    if stamps is None:
        return out
    if not isinstance(stamps, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in stamps
    ):
        return [*out, f"{cid}: source_stamps_ns is not a list of integers"]
    if len(stamps) != clip.frame_count:
        out.append(f"{cid}: source_stamps_ns has {len(stamps)} stamps for {clip.frame_count} frames")
    elif stamps and (stamps[0], stamps[-1]) != (clip.start_stamp_ns, clip.end_stamp_ns):
        out.append(f"{cid}: source_stamps_ns runs {stamps[0]}..{stamps[-1]}, not start..end stamp")
    if any(b < a for a, b in itertools.pairwise(stamps)):
        out.append(f"{cid}: source_stamps_ns go backwards")
    return out


def _duplicate_problems(clips: list[ClipRecord]) -> list[str]:
    """Entries that repeat another: clip_id, video or prompt file, or source frames.

    Equal video bytes alone are no duplicate: two bags may hold the same pictures.
    """
    out: list[str] = []
    first: dict[tuple[str, Any], int] = {}
    for index, clip in enumerate(clips):
        stamps = clip.extra.get("source_stamps_ns")
        keys: list[tuple[str, Any]] = [
            ("clip_id", clip.clip_id),
            ("video file", Path(clip.video).as_posix()),
            ("prompt file", Path(clip.meta).as_posix()),
            ("source frames", (clip.source_bag_sha256 or clip.source_bag, clip.topic, repr(stamps))),
        ]
        for what, key in keys:
            if not key or (what == "source frames" and not (clip.topic and stamps)):
                continue
            earlier = first.setdefault((what, key), index)
            if earlier != index:
                same = (
                    "its clip_id is listed twice"
                    if what == "clip_id"
                    else f"the same {what} as {clips[earlier].clip_id}"
                )
                out.append(f"{clip.clip_id}: a duplicate entry ({same}); each clip may be listed once")
                break  # one line per entry: the first key it repeats says it
    return out


def _video_problems(root: Path, clip: ClipRecord, recorded: dict[str, str], has_manifest: bool) -> list[str]:
    """The video file against its manifest entry: frames, size and rate, then bytes (when recorded).

    A wrong sha256 is reported only when frames, size and rate look right (a swapped or replaced
    video of the same shape): otherwise the more specific problem says it already.
    """
    from cosmos_ros.media.video import probe_video

    video = root / clip.video
    if not video.is_file():
        return [f"{clip.clip_id}: video missing: {clip.video}"]
    try:
        info = probe_video(video)
    except ValueError as exc:
        return [f"{clip.clip_id}: {exc}"]
    if info.frame_count == 0:
        return [f"{clip.clip_id}: {clip.video} has no decodable frames"]
    if not has_manifest:
        odd = (info.frame_count - 1) % 4
        return [f"{clip.clip_id}: {info.frame_count} frames is not 4k+1"] if odd else []
    stated = (clip.frame_count, clip.height, clip.width)
    shape = (info.frame_count, info.height, info.width)
    if stated != shape:
        return [f"{clip.clip_id}: {clip.video} has frames/height/width {shape}, manifest says {stated}"]
    if clip.fps > 0 and info.fps > 0 and abs(info.fps - clip.fps) > 0.01 * clip.fps:
        return [f"{clip.clip_id}: {clip.video} plays at {info.fps:g} fps, manifest says {clip.fps:g}"]
    if clip.video_sha256 and (found := file_sha256(video)) != clip.video_sha256:
        holder = recorded.get(found)
        what = f"it holds the video of {holder} (swapped?)" if holder else "it was replaced or changed"
        return [f"{clip.clip_id}: {clip.video} is not the video its manifest entry records (sha256): {what}"]
    return []


def _prompt_problems(root: Path, clip: ClipRecord, has_manifest: bool) -> list[str]:
    meta = root / clip.meta
    if not meta.is_file():
        return [f"{clip.clip_id}: prompt file missing: {clip.meta}"]
    text = meta.read_text(encoding="utf-8").strip()
    if not text:
        return [f"{clip.clip_id}: prompt file is empty: {clip.meta}"]
    if has_manifest and text != clip.prompt.strip():
        return [f"{clip.clip_id}: {clip.meta} differs from the manifest's prompt"]
    return []


def check_dataset(root: str | os.PathLike[str], progress: ProgressCallback | None = None) -> ValidationResult:
    """Validate ``root``: problems (empty when the dataset is sound) and warnings (failed bags)."""
    root = Path(root)
    try:
        dataset = load_dataset(root, probe_plain=False)
    except (DatasetFormatError, FileNotFoundError) as exc:
        return ValidationResult([str(exc)])
    problems: list[str] = []
    if dataset.has_manifest and dataset.info is None:
        problems.append(f"{root}: dataset.yaml missing")
    if not dataset.clips:
        problems.append(f"{root}: no clips")
    if dataset.has_manifest:
        problems.extend(_duplicate_problems(dataset.clips))
    recorded = {c.video_sha256: c.clip_id for c in dataset.clips if c.video_sha256}
    watch = Stopwatch(progress, "validate", len(dataset.clips))
    for number, clip in enumerate(dataset.clips, start=1):
        outside = [
            f"{clip.clip_id}: {kind} path {rel!r} is outside the dataset {root}; accepted: a relative "
            f"path inside it, such as {VIDEOS_DIR}/<clip_id>.mp4 and {METAS_DIR}/<clip_id>.txt"
            for kind, rel in (("video", clip.video), ("prompt", clip.meta))
            if not _inside(root, rel)
        ]
        problems.extend(outside)
        if dataset.has_manifest:
            problems.extend(_value_problems(clip))
        if not outside:  # never read files the manifest points to outside the dataset
            problems.extend(_prompt_problems(root, clip, dataset.has_manifest))
            problems.extend(_video_problems(root, clip, recorded, dataset.has_manifest))
        watch.report(number)
    listed = {Path(c.video).name for c in dataset.clips} | {Path(c.meta).name for c in dataset.clips}
    for folder, pattern in ((VIDEOS_DIR, "*.mp4"), (METAS_DIR, "*.txt")):
        for file in sorted((root / folder).glob(pattern)):
            if file.name not in listed:
                problems.append(f"{folder}/{file.name}: not in the manifest")
    return ValidationResult(problems, _failed_bag_warnings(dataset))
