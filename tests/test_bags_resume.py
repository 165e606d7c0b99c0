"""Killing a conversion and resuming gives the same dataset as one clean run; workers change nothing."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bags_helpers import TARGET, cli, make_bag
from cosmos_ros.bag_tools.validate import validate_dataset


def _fingerprint(root: Path) -> dict[str, str]:
    """sha256 of every file in the dataset folder except the resume state, videos included.

    Videos are compared byte for byte: the clips here are 48 px (3 macroblocks) wide, the case where
    libx264 used to encode the same frames differently between runs until ``x264_options``
    switched its macroblock tree off there (tests/test_media_video.py).
    """
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".convert_state" not in p.parts
    }


def _bags(folder: Path) -> list[str]:
    return [
        str(make_bag(folder, f"ep{i}", fmt, frames=120)) for i, fmt in enumerate(("mcap", "ros1", "sqlite3"))
    ]


def test_kill_then_resume_equals_clean_run(tmp_path: Path) -> None:
    bags = _bags(tmp_path)
    args = ["bags", "convert", *bags, *TARGET, "--prompt", "p"]
    clean = cli(*args, "-o", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cosmos_ros.cli", *args, "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = out / ".convert_state" / "clips"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(state.glob("*.json"))) < 4:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.jsonl").exists(), "the run finished before it could be killed"

    refused = cli(*args, "-o", str(out))
    assert refused.returncode == 1 and "--resume" in refused.stderr
    resumed = cli(*args, "-o", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _fingerprint(out) == _fingerprint(tmp_path / "clean")
    assert validate_dataset(out) == []
    # Resuming a finished dataset is a no-op that still gives the same result.
    assert cli(*args, "-o", str(out), "--resume").returncode == 0
    assert _fingerprint(out) == _fingerprint(tmp_path / "clean")

    parallel = cli(*args, "-o", str(tmp_path / "parallel"), "--workers", "2")
    assert parallel.returncode == 0, parallel.stderr
    assert _fingerprint(tmp_path / "parallel") == _fingerprint(tmp_path / "clean")


def test_resume_with_other_parameters_is_refused(tmp_path: Path) -> None:
    bag = str(make_bag(tmp_path, "a"))
    assert cli("bags", "convert", bag, "-o", str(tmp_path / "ds"), *TARGET, "--prompt", "p").returncode == 0
    other = cli("bags", "convert", bag, "-o", str(tmp_path / "ds"), *TARGET, "--prompt", "q", "--resume")
    assert other.returncode == 1 and "different parameters" in other.stderr
