"""Check a dataset folder: every video decodes with the stated frame count and size, prompts
exist, and the manifest and the files on disk agree.

Problems make a dataset unusable as it stands (wrong videos, missing prompts, an interrupted
conversion). Bags whose conversion failed (``summary.failed_bags`` in dataset.yaml) are
*warnings*: the clips present are sound and train fine, but the dataset lacks those bags' data,
which the user should know before training on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmos_ros.bag_tools.dataset_format import METAS_DIR, VIDEOS_DIR, DatasetFormatError, load_dataset

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


def check_dataset(root: str | os.PathLike[str], progress: ProgressCallback | None = None) -> ValidationResult:
    """Validate ``root``: problems (empty when the dataset is sound) and warnings (failed bags)."""
    from cosmos_ros.media.video import probe_video

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
    watch = Stopwatch(progress, "validate", len(dataset.clips))
    for number, clip in enumerate(dataset.clips, start=1):
        video, meta = dataset.video_path(clip), dataset.meta_path(clip)
        if not meta.is_file():
            problems.append(f"{clip.clip_id}: prompt file missing: {clip.meta}")
        elif not meta.read_text(encoding="utf-8").strip():
            problems.append(f"{clip.clip_id}: prompt file is empty: {clip.meta}")
        elif dataset.has_manifest and meta.read_text(encoding="utf-8").strip() != clip.prompt.strip():
            problems.append(f"{clip.clip_id}: {clip.meta} differs from the manifest's prompt")
        if not video.is_file():
            problems.append(f"{clip.clip_id}: video missing: {clip.video}")
        else:
            try:
                info = probe_video(video)
            except ValueError as exc:
                problems.append(f"{clip.clip_id}: {exc}")
            else:
                if info.frame_count == 0:
                    problems.append(f"{clip.clip_id}: {clip.video} has no decodable frames")
                elif dataset.has_manifest:
                    stated = (clip.frame_count, clip.height, clip.width)
                    found = (info.frame_count, info.height, info.width)
                    if stated != found:
                        problems.append(
                            f"{clip.clip_id}: {clip.video} has frames/height/width {found}, "
                            f"manifest says {stated}"
                        )
                elif (info.frame_count - 1) % 4:
                    problems.append(f"{clip.clip_id}: {info.frame_count} frames is not 4k+1")
        watch.report(number)
    listed = {Path(c.video).name for c in dataset.clips} | {Path(c.meta).name for c in dataset.clips}
    for folder, pattern in ((VIDEOS_DIR, "*.mp4"), (METAS_DIR, "*.txt")):
        for file in sorted((root / folder).glob(pattern)):
            if file.name not in listed:
                problems.append(f"{folder}/{file.name}: not in the manifest")
    return ValidationResult(problems, _failed_bag_warnings(dataset))
