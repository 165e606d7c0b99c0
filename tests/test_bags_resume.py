"""Killing a conversion and resuming gives the same dataset as one clean run; workers change nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bags_helpers import TARGET, cli, make_bag
from cosmos_ros.bag_tools.convert import STATE_DIR, ConvertConfig, convert_bags
from cosmos_ros.bag_tools.validate import validate_dataset

from cosmos_ros.progress import ProgressEvent


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


def _snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under root, the resume state and leftover ``*.part`` files included."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _interrupt_after_first_bag(bags: list[str], out: Path) -> None:
    """Convert ``bags`` in this process and stop it (as Ctrl-C does) once the first bag has finished
    and the second has written a clip: bag 0 finished, bag 1 half done, bag 2 not started."""
    second = Path(bags[1]).stem

    def interrupt(event: ProgressEvent) -> None:
        finished = list((out / STATE_DIR / "bags").glob("*.json"))
        clips = [p.name for p in (out / STATE_DIR / "clips").glob("*.json")]
        if finished and any(c.startswith(second) for c in clips):
            raise KeyboardInterrupt

    config = ConvertConfig(clip_frames=9, height=32, width=48, prompt="p")  # = TARGET + --prompt p
    with pytest.raises(KeyboardInterrupt):
        convert_bags(bags, out, config, progress=interrupt)
    finished = [json.loads(f.read_text())["bag"] for f in (out / STATE_DIR / "bags").glob("*.json")]
    assert finished == [str(Path(bags[0]).resolve())], "not interrupted after exactly the first bag"
    assert not (out / "manifest.jsonl").exists()


def test_resume_without_the_bags_that_finished_equals_clean_run(tmp_path: Path) -> None:
    bags = _bags(tmp_path)
    clean = cli("bags", "convert", *bags, *TARGET, "--prompt", "p", "-o", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr
    out = tmp_path / "killed"
    _interrupt_after_first_bag(bags, out)
    shutil.rmtree(bags[0])  # the finished bag (an mcap folder), deleted to free disk space

    resumed = cli("bags", "convert", *bags[1:], *TARGET, "--prompt", "p", "-o", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    # Same videos, prompts, manifest (the deleted bag's clips included) and dataset.yaml as a clean run.
    assert _fingerprint(out) == _fingerprint(tmp_path / "clean")
    sources = {json.loads(line)["source_bag"] for line in (out / "manifest.jsonl").read_text().splitlines()}
    assert sources == {str(Path(b).resolve()) for b in bags}
    assert validate_dataset(out) == []
    # Giving the deleted bag's path again (all paths of the first command) is accepted too.
    again = cli("bags", "convert", *bags, *TARGET, "--prompt", "p", "-o", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    assert _fingerprint(out) == _fingerprint(tmp_path / "clean")


def test_resume_without_a_bag_that_did_not_finish_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    bags = _bags(tmp_path)
    out = tmp_path / "killed"
    _interrupt_after_first_bag(bags, out)
    half_done, not_started = bags[1], bags[2]
    Path(half_done).unlink()  # the ros1 bag whose conversion was interrupted
    before = _snapshot(out)
    args = [*TARGET, "--prompt", "p", "-o", str(out), "--resume"]

    missing = cli("bags", "convert", *bags, *args)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert f"not found: {half_done};" in missing.stderr and "did not finish" in missing.stderr
    assert not_started not in missing.stderr and bags[0] not in missing.stderr
    left_out = cli("bags", "convert", bags[0], not_started, *args)
    assert left_out.returncode == 1 and "Traceback" not in left_out.stderr
    assert f"needs bag(s) {Path(half_done).resolve()} " in left_out.stderr
    assert "did not finish" in left_out.stderr
    # A bag the started run did not have is another set of bags: still different parameters.
    other = str(make_bag(tmp_path, "other", frames=120))
    swapped = cli("bags", "convert", bags[0], not_started, other, *args)
    assert swapped.returncode == 1 and "different parameters" in swapped.stderr
    assert str(Path(other).resolve()) in swapped.stderr
    assert _snapshot(out) == before
