"""A few source frames give as many clips as they hold; validate finds every kind of corrupted entry.

Issue 17, point 6: one source frame gave two identical 1-frame clips, three frames gave eight, and
validate accepted duplicate clips, a path outside the dataset, swapped videos and ``fps: -3``.
Each corruption test starts from one good converted dataset and breaks it one way.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from bags_helpers import cli, make_bag
from cosmos_ros.bag_tools.convert import ConvertConfig, convert_bags
from cosmos_ros.bag_tools.dataset_format import load_dataset
from cosmos_ros.bag_tools.validate import validate_dataset

ONE_FRAME = {"clip_frames": 1, "height": 32, "width": 48, "prompt": "p"}


def test_one_source_frame_gives_one_clip(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "one", frames=1)
    report = convert_bags([bag], tmp_path / "ds", ConvertConfig(**ONE_FRAME))
    assert len(report.clips) == 1
    assert validate_dataset(tmp_path / "ds") == []


def test_three_slow_frames_give_three_distinct_clips(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "three", frames=3, fps=2.0)  # 0, 0.5 and 1.0 s
    report = convert_bags([bag], tmp_path / "ds", ConvertConfig(**ONE_FRAME))
    stamps = [c.start_stamp_ns for c in report.clips]
    assert len(stamps) == 3 and len(set(stamps)) == 3
    duplicates = [s for s in report.bags[0].skipped if s["reason"].startswith("duplicate")]
    assert duplicates and "same source frames as window" in duplicates[0]["reason"]


@pytest.fixture(scope="module")
def good_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    bag = make_bag(folder, "demo", frames=60)  # 2 s at 30 fps -> three 9-frame clips
    out = folder / "ds"
    convert_bags([bag], out, ConvertConfig(clip_frames=9, height=32, width=48, prompt="p"))
    assert validate_dataset(out) == [] and len(load_dataset(out).clips) == 3
    return out


def _entries(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


def _write_entries(root: Path, entries: list[dict]) -> None:
    (root / "manifest.jsonl").write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))


def _duplicate_line(root: Path) -> None:
    entries = _entries(root)
    _write_entries(root, [*entries, entries[0]])


def _duplicate_under_another_name(root: Path) -> None:
    entries = _entries(root)
    copy = dict(entries[1], clip_id="copy", video="videos/copy.mp4", meta="metas/copy.txt")
    shutil.copy(root / entries[1]["video"], root / "videos/copy.mp4")
    shutil.copy(root / entries[1]["meta"], root / "metas/copy.txt")
    _write_entries(root, [*entries, copy])


def _outside(root: Path) -> None:
    entries = _entries(root)
    shutil.move(root / entries[0]["video"], root.parent / "elsewhere.mp4")
    entries[0]["video"] = "../elsewhere.mp4"
    _write_entries(root, entries)


def _swap_videos(root: Path) -> None:
    entries = _entries(root)
    a, b = root / entries[0]["video"], root / entries[1]["video"]
    data_a = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data_a)


def _negative_fps(root: Path) -> None:
    entries = _entries(root)
    entries[2]["fps"] = -3
    _write_entries(root, entries)


def _stamps_out_of_order(root: Path) -> None:
    entries = _entries(root)
    entries[0]["start_stamp_ns"], entries[0]["end_stamp_ns"] = (
        entries[0]["end_stamp_ns"],
        entries[0]["start_stamp_ns"],
    )
    entries[1]["source_stamps_ns"] = entries[1]["source_stamps_ns"][:-1]
    _write_entries(root, entries)


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "duplicate line": (_duplicate_line, ["a duplicate entry (its clip_id is listed twice)"]),
    "duplicate clip": (
        _duplicate_under_another_name,
        ["a duplicate entry (the same source frames as "],
    ),
    "outside": (_outside, ["video path '../elsewhere.mp4' is outside the dataset"]),
    "swapped": (_swap_videos, ["(swapped?)", "(swapped?)"]),
    "fps -3": (_negative_fps, ["fps -3 is impossible; accepted: a number > 0"]),
    "stamps": (
        _stamps_out_of_order,
        ["are impossible; accepted: 0 <= start <= end", "not start..end stamp", "has 8 stamps for 9 frames"],
    ),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_validate_finds_each_corruption(good_dataset: Path, tmp_path: Path, name: str) -> None:
    corrupt, expected = CORRUPTIONS[name]
    root = tmp_path / "ds"
    shutil.copytree(good_dataset, root)
    corrupt(root)
    problems = validate_dataset(root)
    text = "\n".join(problems)
    assert len(problems) == len(expected), problems
    for phrase in expected:
        assert text.count(phrase) == expected.count(phrase), (phrase, problems)
    result = cli("bags", "validate", str(root))
    assert result.returncode == 1 and f"{len(expected)} problem(s)" in result.stderr
    assert "Traceback" not in result.stderr
