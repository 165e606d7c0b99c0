"""The dataset folder contract round-trips, and bad folders fail with the file and field named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cosmos_ros.bag_tools.dataset_format import (
    SCHEMA_VERSION,
    ClipRecord,
    DatasetFormatError,
    DatasetInfo,
    load_dataset,
    meta_relpath,
    video_relpath,
    write_clip_files,
    write_dataset,
)


def _record(clip_id: str, split: str, frames: int = 5) -> ClipRecord:
    return ClipRecord(
        clip_id=clip_id,
        video=video_relpath(clip_id),
        meta=meta_relpath(clip_id),
        prompt=f"move block {clip_id}",
        frame_count=frames,
        height=16,
        width=24,
        fps=16.0,
        split=split,
        source_bag="/data/a.bag",
        source_bag_sha256="ab" * 32,
        topic="/cam/image_raw",
        start_stamp_ns=1_000,
        end_stamp_ns=2_000,
        clip_group=f"g-{clip_id}",
        episode="ep0",
    )


def _frames(n: int, value: int) -> np.ndarray:
    return np.full((n, 16, 24, 3), value, dtype=np.uint8)


def test_round_trip_with_manifest(tmp_path: Path) -> None:
    records = [_record("b", "val"), _record("a", "train"), _record("c", "test")]
    for i, rec in enumerate(records):
        write_clip_files(tmp_path, rec.clip_id, _frames(5, 40 * i), rec.fps, rec.prompt)
    info = DatasetInfo(tool_version="9.9", parameters={"fps": 16, "topics": ["/cam"]}, summary={"clips": 3})
    written = write_dataset(tmp_path, records, info)

    loaded = load_dataset(tmp_path)
    assert [c.clip_id for c in loaded.clips] == ["a", "b", "c"]
    assert loaded.clips == sorted(records, key=lambda r: r.clip_id)
    assert loaded.manifest_sha256 == written.manifest_sha256
    assert loaded.info is not None and loaded.info.parameters == info.parameters
    assert loaded.info.schema_version == SCHEMA_VERSION
    assert [c.clip_id for c in loaded.split("val")] == ["b"]
    assert loaded.video_path(loaded.clips[0]).is_file()
    assert loaded.meta_path(loaded.clips[0]).read_text().strip() == "move block a"
    with pytest.raises(ValueError, match="unknown split"):
        loaded.split("holdout")


def test_unknown_manifest_fields_survive_a_round_trip(tmp_path: Path) -> None:
    rec = ClipRecord.from_dict({**json.loads(_record("a", "train").to_json()), "future_field": [1, 2]})
    assert rec.extra == {"future_field": [1, 2]}
    write_dataset(tmp_path, [rec], DatasetInfo())
    again = load_dataset(tmp_path).clips[0]
    assert again.extra == {"future_field": [1, 2]}
    assert again.to_json() == rec.to_json()


def test_manifest_hash_changes_with_content(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "x", [_record("a", "train")], DatasetInfo())
    b = write_dataset(tmp_path / "y", [_record("a", "val")], DatasetInfo())
    assert a.manifest_sha256 != b.manifest_sha256


def test_plain_recipe_layout_loads_without_manifest(tmp_path: Path) -> None:
    write_clip_files(tmp_path, "vid_01", _frames(9, 100), 16.0, "The robot arm is performing a task.")
    write_clip_files(tmp_path, "vid_00", _frames(5, 50), 16.0, "pick")
    ds = load_dataset(tmp_path)
    assert not ds.has_manifest and ds.info is None
    assert [(c.clip_id, c.frame_count, c.height, c.width, c.split) for c in ds.clips] == [
        ("vid_00", 5, 16, 24, "train"),
        ("vid_01", 9, 16, 24, "train"),
    ]
    assert ds.clips[1].prompt == "The robot arm is performing a task."


def test_bad_manifest_line_names_file_line_and_field(tmp_path: Path) -> None:
    good = _record("a", "train").to_json()
    bad = json.loads(good)
    del bad["prompt"]
    (tmp_path / "manifest.jsonl").write_text(good + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DatasetFormatError, match=r"manifest.jsonl:2: missing field\(s\) prompt"):
        load_dataset(tmp_path)
    bad_split = {**json.loads(good), "split": "holdout"}
    (tmp_path / "manifest.jsonl").write_text(json.dumps(bad_split) + "\n")
    with pytest.raises(DatasetFormatError, match="holdout"):
        load_dataset(tmp_path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    write_dataset(tmp_path, [_record("a", "train")], DatasetInfo())
    (tmp_path / "dataset.yaml").write_text(f"schema_version: {SCHEMA_VERSION + 1}\n")
    with pytest.raises(DatasetFormatError, match="newer"):
        load_dataset(tmp_path)


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="not a dataset folder"):
        load_dataset(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing")
