"""bags validate finds each kind of problem; bags inspect reports topics and suggests the camera."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from bags_helpers import TARGET, cli, make_bag
from cosmos_ros.bag_tools.validate import validate_dataset

from cosmos_ros.media.video import write_video


def test_validate_reports_each_problem(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "a", frames=60)
    out = tmp_path / "ds"
    assert cli("bags", "convert", str(bag), "-o", str(out), *TARGET, "--prompt", "p").returncode == 0
    assert validate_dataset(out) == []
    videos = sorted((out / "videos").glob("*.mp4"))
    metas = sorted((out / "metas").glob("*.txt"))
    assert len(videos) >= 3
    write_video(videos[0], np.zeros((5, 32, 48, 3), np.uint8), 16)  # wrong frame count
    videos[1].write_bytes(b"not a video")
    metas[2].unlink()
    write_video(out / "videos" / "stray.mp4", np.zeros((5, 32, 48, 3), np.uint8), 16)
    problems = validate_dataset(out)
    text = "\n".join(problems)
    assert videos[0].stem in text and "(5, 32, 48)" in text
    assert videos[1].stem in text
    assert f"prompt file missing: metas/{metas[2].name}" in text
    assert "videos/stray.mp4: not in the manifest" in text
    result = cli("bags", "validate", str(out))
    assert result.returncode == 1 and "4 problem(s)" in result.stderr


def test_inspect_table_and_json(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "insp", "ros1", encoding="jpeg", topics=("/front", "/wrist"))
    table = cli("bags", "inspect", str(bag))
    assert table.returncode == 0, table.stderr
    assert (
        "/front" in table.stdout
        and "64x96 (HxW) jpeg" in table.stdout
        and "suggested camera topic:" in table.stdout
    )
    data = json.loads(cli("bags", "inspect", str(bag), "--json").stdout)
    topics = {t["topic"]: t for t in data["bags"][0]["topics"]}
    assert topics["/front"]["count"] == 40 and abs(topics["/front"]["rate_hz"] - 30) < 1
    assert topics["/task/prompt"]["msgtype"] == "std_msgs/msg/String"
    assert data["bags"][0]["suggested_camera"] in ("/front", "/wrist")
    missing = cli("bags", "inspect", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "nope" in missing.stderr


def test_synth_cli_writes_every_format(tmp_path: Path) -> None:
    for fmt in ("mcap", "sqlite3", "ros1"):
        path = tmp_path / (f"s_{fmt}" + (".bag" if fmt == "ros1" else ""))
        args = ["--format", fmt, "--frames", "10", "--height", "48", "--width", "64", "--second-view"]
        result = cli("bags", "synth", str(path), *args)
        assert result.returncode == 0, result.stderr
        info = json.loads(cli("bags", "inspect", str(path), "--json").stdout)["bags"][0]
        assert {t["topic"] for t in info["topics"]} >= {"/camera/image_raw", "/camera/image_raw_side"}
