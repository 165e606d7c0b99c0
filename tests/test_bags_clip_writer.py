"""The background clip writer: order, bounded queue, errors surfacing; a failed write in a real
conversion names the bag, keeps the finished clips and leaves no half-written file."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from bags_helpers import make_bag
from cosmos_ros.bag_tools.clip_writer import BackgroundWriter
from cosmos_ros.bag_tools.convert import STATE_DIR, ConvertConfig, ConvertError, convert_bags
from cosmos_ros.bag_tools.dataset_format import meta_relpath, video_relpath
from cosmos_ros.bag_tools.validate import validate_dataset


def test_jobs_run_in_submission_order() -> None:
    done: list[int] = []
    with BackgroundWriter(max_pending=2) as writer:
        for i in range(20):
            writer.submit(lambda i=i: (time.sleep(0.001 * (i % 3)), done.append(i)))
    assert done == list(range(20))


def test_a_full_queue_makes_the_submitter_wait() -> None:
    release = threading.Event()
    writer = BackgroundWriter(max_pending=1)
    writer.submit(release.wait)  # taken by the thread, which then blocks
    time.sleep(0.05)
    writer.submit(lambda: None)  # fills the one queue slot
    third = threading.Thread(target=writer.submit, args=(lambda: None,))
    third.start()
    third.join(timeout=0.3)
    assert third.is_alive(), "submit returned although the queue was full"
    release.set()
    third.join(timeout=5)
    assert not third.is_alive()
    writer.close()


def test_the_first_error_surfaces_and_stops_later_jobs() -> None:
    ran: list[str] = []

    def fail() -> None:
        raise OSError("disk full")

    writer = BackgroundWriter(max_pending=1)
    writer.submit(fail)
    with pytest.raises(OSError, match="disk full"):
        for _ in range(100):  # the error is raised at a later submit ...
            writer.submit(lambda: ran.append("later"))
            time.sleep(0.01)
    with pytest.raises(OSError, match="disk full"):  # ... and again at close
        writer.close()
    assert ran == []


def test_the_readers_error_wins_and_queued_jobs_still_finish() -> None:
    ran: list[int] = []
    with pytest.raises(KeyError), BackgroundWriter(max_pending=2) as writer:
        writer.submit(lambda: (time.sleep(0.05), ran.append(1)))
        writer.submit(lambda: ran.append(2))
        raise KeyError("reader failed")
    assert ran == [1, 2]


def test_failed_clip_write_names_the_bag_and_leaves_no_partial_files(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "demo", "mcap", frames=100)
    config = ConvertConfig(clip_frames=9, height=32, width=48, prompt="p")
    out = tmp_path / "ds"
    clean = convert_bags([bag], out, config)
    ids = sorted(c.clip_id for c in clean.clips)
    assert len(ids) >= 4
    # Make the second clip unwritable: its video's final name is taken by a folder.
    victim = ids[1]
    (out / video_relpath(victim)).unlink()
    (out / meta_relpath(victim)).unlink()
    (out / STATE_DIR / "clips" / f"{victim}.json").unlink()
    shutil.rmtree(out / STATE_DIR / "bags")
    (out / video_relpath(victim)).mkdir()

    # The only bag failed: no dataset, and the folder reads as unfinished (not as the earlier result).
    with pytest.raises(ConvertError) as failed:
        convert_bags([bag], out, config, resume=True)
    error = str(failed.value)
    assert str(bag) in error and victim in error and "--resume" in error
    assert not (out / "manifest.jsonl").exists() and (out / STATE_DIR).is_dir()
    assert "interrupted conversion" in validate_dataset(out)[0]
    assert not list(out.rglob("*.part")), "a failed write left a temporary file"
    assert not (out / meta_relpath(victim)).exists(), "a prompt without its video"
    assert (out / video_relpath(ids[0])).is_file()

    (out / video_relpath(victim)).rmdir()
    assert not convert_bags([bag], out, config, resume=True).failed
    assert validate_dataset(out) == []
