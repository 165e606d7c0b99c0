"""bags convert --json and bags validate --json: one JSON document on stdout, same figures as text."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from bags_helpers import TARGET, cli, make_bag


def _manifest_count(dataset: Path) -> int:
    return len((dataset / "manifest.jsonl").read_text(encoding="utf-8").splitlines())


def _json_only(stdout: str) -> Any:
    """The whole of stdout must be exactly one JSON document."""
    return json.loads(stdout)


def test_convert_json_matches_the_text_summary(tmp_path: Path) -> None:
    plain = make_bag(tmp_path, "plain", frames=60)
    gappy = make_bag(tmp_path, "gappy", frames=60, gaps=[(30, 0.4)])
    args = (str(plain), str(gappy), *TARGET, "--prompt", "p")
    text = cli("bags", "convert", *args, "-o", str(tmp_path / "text"))
    assert text.returncode == 0, text.stderr
    result = cli("bags", "convert", *args, "-o", str(tmp_path / "js"), "--json")
    assert result.returncode == 0, result.stderr
    data = _json_only(result.stdout)

    head = re.search(
        r"^(\d+) clips from (\d+) bag\(s\) in [\d.]+ s \(\d+ source frames/s\) -> (.+)$", text.stdout, re.M
    )
    assert head is not None, text.stdout
    assert data["clips"] == int(head.group(1)) == _manifest_count(tmp_path / "js")
    assert data["bag_count"] == int(head.group(2)) == len(data["bags"]) == 2
    assert data["dataset"] == str(tmp_path / "js") and head.group(3) == str(tmp_path / "text")
    assert data["ok"] is True and data["bags_failed"] == 0
    assert sum(b["clips"] for b in data["bags"]) == data["clips"]
    assert sum(b["frames_read"] for b in data["bags"]) == data["frames_read"] == 120
    assert data["seconds"] > 0 and data["source_frames_per_s"] > 0

    by_name = {Path(b["bag"]).name: b for b in data["bags"]}
    skipped_lines = [line for line in text.stdout.splitlines() if line.startswith("skipped:")]
    assert len(skipped_lines) == len(by_name["gappy"]["skipped"]) > 0
    assert by_name["plain"]["skipped"] == [] and by_name["plain"]["error"] is None
    assert all("gap" in s["reason"] for s in by_name["gappy"]["skipped"])
    notes = [line for line in text.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == sum(len(b["notes"]) for b in data["bags"])


def test_convert_json_reports_a_failed_bag_with_the_same_exit_code(tmp_path: Path) -> None:
    good = make_bag(tmp_path, "good")
    bad = tmp_path / "bad.bag"
    bad.write_bytes(b"this is not a bag")
    args = (str(good), str(bad), *TARGET, "--prompt", "p")
    text = cli("bags", "convert", *args, "-o", str(tmp_path / "text"))
    result = cli("bags", "convert", *args, "-o", str(tmp_path / "js"), "--json")
    assert result.returncode == text.returncode == 1
    data = _json_only(result.stdout)
    assert data["ok"] is False and data["bags_failed"] == 1 and data["bag_count"] == 2
    failed = [b for b in data["bags"] if b["error"]]
    assert [Path(b["bag"]).name for b in failed] == ["bad.bag"]
    assert failed[0]["error"] in text.stderr and failed[0]["error"] in result.stderr
    assert data["clips"] == _manifest_count(tmp_path / "js") > 0


def test_validate_json_on_a_sound_dataset(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "a", frames=60)
    out = tmp_path / "ds"
    assert cli("bags", "convert", str(bag), "-o", str(out), *TARGET, "--prompt", "p").returncode == 0
    text = cli("bags", "validate", str(out))
    assert text.returncode == 0 and text.stdout.strip() == f"{out}: OK"
    result = cli("bags", "validate", str(out), "--json")
    assert result.returncode == 0, result.stderr
    data = _json_only(result.stdout)
    assert data == {
        "dataset": str(out),
        "ok": True,
        "clips_checked": _manifest_count(out),
        "problem_count": 0,
        "problems": [],
        "warning_count": 0,
        "warnings": [],
    }
    assert data["clips_checked"] >= 3


def test_validate_json_lists_the_problems_the_text_shows(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "a", frames=60)
    out = tmp_path / "ds"
    assert cli("bags", "convert", str(bag), "-o", str(out), *TARGET, "--prompt", "p").returncode == 0
    videos = sorted((out / "videos").glob("*.mp4"))
    metas = sorted((out / "metas").glob("*.txt"))
    videos[1].write_bytes(b"not a video")
    metas[2].unlink()
    shutil.copy(videos[0], out / "videos" / "stray.mp4")

    text = cli("bags", "validate", str(out))
    result = cli("bags", "validate", str(out), "--json")
    assert text.returncode == result.returncode == 1
    data = _json_only(result.stdout)
    count = re.search(r"(\d+) problem\(s\)", text.stderr)
    assert count is not None and data["problem_count"] == int(count.group(1)) == len(data["problems"]) == 3
    assert data["ok"] is False and data["clips_checked"] == _manifest_count(out)
    listed = [line.removeprefix("  - ") for line in text.stderr.splitlines() if line.startswith("  - ")]
    assert [p["text"] for p in data["problems"]] == listed
    where = {p["where"]: p["message"] for p in data["problems"]}
    assert where["videos/stray.mp4"] == "not in the manifest"
    assert where[metas[2].stem] == f"prompt file missing: metas/{metas[2].name}"
    assert videos[1].stem in where


def test_help_documents_the_json_flag() -> None:
    for command in ("convert", "validate"):
        result = cli("bags", command, "--help")
        assert result.returncode == 0 and "--json" in result.stdout
