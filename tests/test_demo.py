"""``cosmos-ros demo --quick`` end to end, then every artifact checked on its own.

The demo runs as a command in its own process (as ``make demo`` does); the test then reopens
what it wrote with the library (dataset validation, the registry, the mp4) instead of trusting
its summary, and checks that the summary and the printed lines tell the same story.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")

from cosmos_ros.bag_tools.dataset_format import load_dataset
from cosmos_ros.bag_tools.validate import validate_dataset

from cosmos_ros.cli import main
from cosmos_ros.demo import (
    ADAPTER_NAME,
    NOISE_NOTE,
    QUICK,
    REAL,
    SUMMARY_NAME,
    Demo,
    StageFailed,
    convert_config,
    run_demo,
    train_config,
)
from cosmos_ros.media.video import probe_video
from cosmos_ros.registry import open_registry

TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH = 9, 64, 96  # the tiny model's 'full' preset (its hint file)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo_output"
    proc = subprocess.run(
        [sys.executable, "-m", "cosmos_ros.cli", "demo", "--output", str(out), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads((out / SUMMARY_NAME).read_text(encoding="utf-8"))
    return out, summary, proc.stdout


def test_every_stage_ran_in_order_and_the_summary_says_where_things_are(demo_run) -> None:
    out, summary, stdout = demo_run
    assert summary["status"] == "ok"
    assert [s["number"] for s in summary["stages"]] == list(range(1, 9))
    assert all(s["status"] == "ok" for s in summary["stages"])
    positions = [stdout.index(f"[{n}/8] ") for n in range(1, 9)]
    assert positions == sorted(positions)
    assert "[4/8] converting bags -> dataset" in stdout
    for printed in (
        summary["dataset"]["path"],
        summary["registry"]["path"],
        summary["registry"]["adapter_id"],
        summary["evaluation"]["report"],
        summary["ros"]["video_path"],
    ):
        assert printed in stdout.split("[8/8]")[1]
    assert " ".join(NOISE_NOTE.split()) in " ".join(stdout.split())
    assert summary["model"] == {"path": str(out / "model"), "kind": "tiny"}


def test_the_dataset_comes_from_ros1_and_ros2_bags_and_validates(demo_run) -> None:
    _, summary, _ = demo_run
    formats = {b["format"] for b in summary["bags"]}
    assert formats == {"mcap", "ros1"}
    for bag in summary["bags"]:
        path = Path(bag["path"])
        if bag["format"] == "ros1":
            assert path.is_file() and path.suffix == ".bag"
        else:
            assert (path / "metadata.yaml").is_file() and list(path.glob("*.mcap"))
    dataset_dir = Path(summary["dataset"]["path"])
    assert validate_dataset(dataset_dir) == []
    dataset = load_dataset(dataset_dir)
    assert {c.split for c in dataset.clips} == {"train", "val", "test"}
    assert len(dataset.clips) == summary["dataset"]["clips"]
    sources = {Path(c.source_bag).name for c in dataset.clips}
    assert any(s.endswith(".bag") for s in sources) and any(not s.endswith(".bag") for s in sources)
    assert Path(summary["held_out_bag"]).name not in sources  # replayed over ROS, never trained on
    assert {(c.frame_count, c.height, c.width) for c in dataset.clips} == {
        (TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH)
    }
    assert all("red block" in c.prompt for c in dataset.clips)  # from the bags' prompt topic


def test_the_adapter_is_registered_evaluated_and_approved_honestly(demo_run) -> None:
    _, summary, stdout = demo_run
    evaluation = summary["evaluation"]
    with open_registry(summary["registry"]["path"]) as registry:
        record = registry.get(summary["registry"]["adapter_id"])
        assert record.status == "approved" == summary["registry"]["status"]
        latest = record.latest_evaluation
        assert latest is not None
        results = latest.results
        approval = record.approvals[-1]
    assert results["split"] == "test" and results["clips"] >= 1
    assert results["metrics"]["psnr"]["base_mean"] is not None
    assert results["gate"]["promote_to"] == "approved" and results["gate"]["rules"]
    assert (Path(evaluation["dir"]) / "metrics.json").is_file() and Path(evaluation["report"]).is_file()
    metrics = json.loads((Path(evaluation["dir"]) / "metrics.json").read_text(encoding="utf-8"))
    delta = metrics["summary"]["psnr"][record.adapter_id]["delta"]["mean"]
    assert results["metrics"]["psnr"]["delta_vs_base"] == pytest.approx(delta)
    if evaluation["forced"]:  # the gate failed: approval by force must be recorded and shouted
        assert results["passed"] is False and approval.force_reason
        assert "BY FORCE" in stdout and "APPROVED BY FORCE" in stdout.split("[8/8]")[1]
    else:  # a real pass: every rule's measured improvement reaches its margin
        assert results["passed"] is True and approval.force_reason is None
        assert delta >= 0.0  # the demo's gate: psnr no worse than the base (margin 0)
        assert all(c["passed"] and c["improvement"] >= c["margin"] for c in results["gate"]["checks"])
        assert "gate ok" in stdout and "BY FORCE" not in stdout


def test_the_prediction_arrived_over_ros_and_as_an_mp4(demo_run) -> None:
    out, summary, _ = demo_run
    ros = summary["ros"]
    assert ros["frame_count"] == TINY_FRAMES
    assert ros["frames_received"] == ros["frame_count"]
    assert ros["topic_frame_size"] == [TINY_HEIGHT, TINY_WIDTH]
    assert ros["adapter_id"] == summary["registry"]["adapter_id"]  # the approved adapter was used
    assert ros["held_out_bag"] == summary["held_out_bag"]
    video = Path(ros["video_path"])
    assert video.parent == out / "predictions"
    info = probe_video(video)
    assert (info.frame_count, info.height, info.width) == (TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH)
    assert "playing" in (out / "ros" / "bag_player.log").read_text(encoding="utf-8")


def test_a_non_empty_output_folder_is_refused(tmp_path, capsys) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["demo", "--output", str(out), "--quick"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["demo", "--output", str(out), "--quick", "--overwrite"]) == 1  # not a demo folder
    assert "notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_a_failing_stage_stops_with_its_name_and_reason(tmp_path) -> None:
    not_a_model = tmp_path / "not_a_model"
    not_a_model.mkdir()
    lines: list[str] = []
    with pytest.raises(StageFailed) as failure:
        run_demo(tmp_path / "out", model=not_a_model, device="cpu", quick=True, echo=lines.append)
    assert failure.value.number == 2 and "[2/8] checking the model failed" in str(failure.value)
    assert str(not_a_model) in failure.value.reason
    summary = json.loads((tmp_path / "out" / SUMMARY_NAME).read_text(encoding="utf-8"))
    assert summary["status"] == "failed" and summary["failed_stage"] == 2
    assert not (tmp_path / "out" / "bags").exists()  # nothing after the failing stage ran


def test_real_weight_sizes_give_valid_convert_and_training_configs(tmp_path) -> None:
    """The --model path (real weights, GPU) cannot run here; its configs are checked instead."""
    demo = Demo(tmp_path, tmp_path / "Cosmos-Predict2.5-2B", "cuda", "bfloat16", False, sizes=REAL)
    convert = convert_config(REAL)
    convert.check()
    assert (convert.clip_frames, convert.height, convert.width) == (29, 432, 768)
    assert REAL.camera_topic.endswith("/compressed") and set(REAL.encodings.values()) == {"jpeg"}
    train = train_config(demo)
    assert (train.num_frames, train.height, train.width) == (convert.clip_frames, 432, 768)
    assert train.mixed_precision == "bf16" and train.max_steps == 100 and not train.compile_blocks
    assert train.registry == str(tmp_path / "registry") and train.adapter_name == ADAPTER_NAME
    tiny = train_config(Demo(tmp_path, tmp_path / "m", "cpu", "float32", True, sizes=QUICK))
    assert tiny.mixed_precision == "no" and (tiny.num_frames, tiny.height, tiny.width) == (9, 64, 96)
