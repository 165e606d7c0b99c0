"""bags convert on real bags written by rosbags: formats, encodings, resampling, gaps, errors, splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from bags_helpers import TARGET, cli, expected_source_index, make_bag
from cosmos_ros.bag_tools.convert import ConvertConfig, ConvertError, assign_splits, convert_bags
from cosmos_ros.bag_tools.dataset_format import load_dataset
from cosmos_ros.bag_tools.synthetic import SynthSpec, decode_pattern

from cosmos_ros.media.video import read_video

CASES = [
    ("ros1", "rgb8"),
    ("ros1", "jpeg"),
    ("sqlite3", "bgr8"),
    ("sqlite3", "png"),
    ("mcap", "yuv422"),
    ("mcap", "bayer_grbg8"),
    ("mcap", "rgba8"),
    ("sqlite3", "mono16"),
]


@pytest.mark.parametrize(("fmt", "encoding"), CASES, ids=[f"{f}-{e}" for f, e in CASES])
def test_formats_and_encodings_pick_the_nearest_frames_in_rgb(
    tmp_path: Path, fmt: str, encoding: str
) -> None:
    bag = make_bag(tmp_path, "demo", fmt, encoding=encoding, compress=fmt != "sqlite3")
    config = ConvertConfig(clip_frames=9, height=32, width=48, prompt_topic="/task/prompt")
    report = convert_bags([bag], tmp_path / "ds", config)
    assert not report.failed
    dataset = load_dataset(tmp_path / "ds")
    # 40 frames at 30 fps span 1.3 s -> 21 points at 16 fps -> two back-to-back 9-frame clips.
    assert len(dataset.clips) == 2
    spec = SynthSpec(frames=40, fps=30.0)
    for clip in dataset.clips:
        frames, _ = read_video(dataset.video_path(clip))
        assert frames.shape == (9, 32, 48, 3)
        window = int(clip.clip_id.split("-w")[1][:4])
        for j, frame in enumerate(frames):
            index, rgb_ok = decode_pattern(frame)
            assert index == expected_source_index(window * 9 + j, 16.0, 40, spec), (clip.clip_id, j)
            if not encoding.startswith("mono"):
                assert rgb_ok, f"colour bars not in RGB order in {clip.clip_id} frame {j}"
        assert clip.prompt.startswith("The robot arm picks up")
        assert clip.start_stamp_ns == spec.stamp_ns(expected_source_index(window * 9, 16.0, 40, spec))


def test_two_cameras_share_clip_groups(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "two", topics=("/left", "/right"))
    config = ConvertConfig(topics=["/left", "/right"], clip_frames=9, height=32, width=48, prompt="p")
    dataset = load_dataset(convert_bags([bag], tmp_path / "ds", config).output)
    groups = dataset.groups()
    assert len(groups) == 2
    for clips in groups.values():
        assert sorted(c.topic for c in clips) == ["/left", "/right"]
        assert len({c.start_stamp_ns for c in clips}) == 1


def test_gap_beyond_tolerance_yields_no_clip_across_it(tmp_path: Path) -> None:
    # 60 frames; from frame 30 on every stamp is 0.4 s later (a gap far beyond 62.5 ms).
    bag = make_bag(tmp_path, "gappy", frames=60, gaps=[(30, 0.4)])
    result = cli("bags", "convert", str(bag), "-o", str(tmp_path / "ds"), *TARGET, "--prompt", "p")
    assert result.returncode == 0, result.stderr
    assert "skipped:" in result.stdout and "gap" in result.stdout
    dataset = load_dataset(tmp_path / "ds")
    spec = SynthSpec(fps=30.0, gaps=[(30, 0.4)])
    gap_start, gap_end = spec.stamp_ns(29), spec.stamp_ns(30)
    assert dataset.clips
    for clip in dataset.clips:
        assert clip.end_stamp_ns <= gap_start or clip.start_stamp_ns >= gap_end, clip.clip_id
    skipped = dataset.info.report["bags"][0]["skipped_windows"]
    assert skipped and all(s["missing_frames"] > 0 for s in skipped)


def test_corrupt_bag_is_named_and_others_still_convert(tmp_path: Path) -> None:
    good = make_bag(tmp_path, "good", "ros1")
    bad = make_bag(tmp_path, "bad", "ros1", frames=60)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    result = cli("bags", "convert", str(good), str(bad), "-o", str(tmp_path / "ds"), *TARGET, "--prompt", "p")
    assert result.returncode == 1
    assert "bad.bag" in result.stderr and "good.bag" not in result.stderr
    dataset = load_dataset(tmp_path / "ds")
    assert {Path(c.source_bag).name for c in dataset.clips} == {"good.bag"}
    errors = [b for b in dataset.info.report["bags"] if b["error"]]
    assert [Path(b["bag"]).name for b in errors] == ["bad.bag"]


def test_a_bag_failing_mid_run_is_named_and_others_still_convert(tmp_path: Path) -> None:
    good = make_bag(tmp_path, "good", "ros1")
    other = make_bag(tmp_path, "other", topics=("/elsewhere",))  # opens fine, lacks the topic
    args = ["-o", str(tmp_path / "ds"), *TARGET, "--prompt", "p", "--topic", "/camera/image_raw"]
    result = cli("bags", "convert", str(good), str(other), *args)
    assert result.returncode == 1
    assert "other" in result.stderr and "good.bag" not in result.stderr
    dataset = load_dataset(tmp_path / "ds")
    assert {Path(c.source_bag).name for c in dataset.clips} == {"good.bag"}
    errors = [b for b in dataset.info.report["bags"] if b["error"]]
    assert [Path(b["bag"]).name for b in errors] == ["other"]


def test_missing_topic_lists_the_topics_that_exist(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "b", topics=("/cam/front",))
    result = cli("bags", "convert", str(bag), "-o", str(tmp_path / "ds"), *TARGET, "--topic", "/nope")
    assert result.returncode == 1
    assert "'/nope' not found" in result.stderr and "/cam/front (sensor_msgs/msg/Image)" in result.stderr


def test_unsupported_encoding_is_named(tmp_path: Path) -> None:
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    names = ("sensor_msgs/msg/Image", "std_msgs/msg/Header", "builtin_interfaces/msg/Time")
    Image, Header, Time = (store.types[n] for n in names)

    with Writer(tmp_path / "rgb16", version=9) as writer:
        conn = writer.add_connection("/cam", "sensor_msgs/msg/Image", typestore=store)
        for i in range(20):
            msg = Image(
                header=Header(stamp=Time(sec=1, nanosec=i * 30_000_000), frame_id="c"),
                height=4, width=4, encoding="rgb16", is_bigendian=0, step=24,
                data=np.zeros(96, np.uint8),
            )  # fmt: skip
            writer.write(conn, 10**9 + i * 30_000_000, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    result = cli(
        "bags", "convert", str(tmp_path / "rgb16"), "-o", str(tmp_path / "ds"), *TARGET, "--prompt", "p"
    )
    assert result.returncode == 1
    assert "unsupported image encoding 'rgb16'" in result.stderr and "rgb16" in result.stderr


def test_prompt_sources_prefix_and_empty_prompt(tmp_path: Path) -> None:
    a = make_bag(tmp_path, "a", prompt=None)
    b = make_bag(tmp_path, "b", prompt=None)
    mapping = tmp_path / "prompts.csv"
    mapping.write_text("bag,prompt\na,stack the cups\n")
    config = ConvertConfig(clip_frames=9, height=32, width=48)
    with pytest.raises(ConvertError, match="no bag converted") as failed:
        convert_bags([a, b], tmp_path / "ds", config)
    assert str(failed.value).count("has no prompt") == 2 and not (tmp_path / "ds").exists()
    config = ConvertConfig(
        clip_frames=9, height=32, width=48, prompt_map=str(mapping), prompt="fallback", prompt_prefix="Robot:"
    )
    dataset = load_dataset(convert_bags([a, b], tmp_path / "ds2", config).output)
    prompts = {Path(c.source_bag).name: c.prompt for c in dataset.clips}
    assert prompts == {"a": "Robot: stack the cups", "b": "Robot: fallback"}
    assert (tmp_path / "ds2" / dataset.clips[0].meta).read_text().strip() == dataset.clips[0].prompt


def test_existing_output_is_refused_and_config_yaml_is_overridden_by_flags(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "a")
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump({"clip_frames": 5, "resolution": "32x48", "prompt": "from yaml"}))
    out = tmp_path / "ds"
    result = cli(
        "bags", "convert", str(bag), "-o", str(out), "--config", str(config_file), "--prompt", "flag"
    )
    assert result.returncode == 0, result.stderr
    dataset = load_dataset(out)
    assert {c.prompt for c in dataset.clips} == {"flag"} and dataset.clips[0].frame_count == 5
    assert dataset.info.parameters["clip_frames"] == 5
    again = cli("bags", "convert", str(bag), "-o", str(out), "--prompt", "x")
    assert again.returncode == 1 and "exists" in again.stderr
    assert (
        cli("bags", "convert", str(bag), "-o", str(out), "--prompt", "x", *TARGET, "--overwrite").returncode
        == 0
    )
    assert cli("bags", "validate", str(out)).returncode == 0


def test_splits_are_by_episode_deterministic_and_seedable() -> None:
    episodes = [f"bag{i}-e000" for i in range(20)]
    first = assign_splits(episodes, 0.2, 0.1, seed=3)
    assert first == assign_splits(list(reversed(episodes)), 0.2, 0.1, seed=3)
    assert sorted(first.values()).count("val") == 4 and sorted(first.values()).count("test") == 2
    assert first != assign_splits(episodes, 0.2, 0.1, seed=4)


def test_episode_split_on_gap_keeps_episodes_whole(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, "two_eps", frames=80, gaps=[(40, 3.0)])
    config = ConvertConfig(
        clip_frames=9, height=32, width=48, prompt="p", episode_mode="gap", episode_gap_s=1.0
    )
    report = convert_bags([bag], tmp_path / "ds", config)
    dataset = load_dataset(report.output)
    episodes = {c.episode for c in dataset.clips}
    assert len(episodes) == 2
    assert not dataset.info.report["bags"][0]["skipped_windows"]  # the gap ended an episode, not a clip
    for episode in episodes:
        assert len({c.split for c in dataset.clips if c.episode == episode}) == 1
    manifest = [json.loads(line) for line in (report.output / "manifest.jsonl").read_text().splitlines()]
    assert [m["clip_id"] for m in manifest] == sorted(m["clip_id"] for m in manifest)
