# ruff: noqa: F811  (pytest fixtures imported from model_helpers are redefined as arguments)
"""Tiny model determinism, fingerprints, strict directory validation, safety policy, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from bags_helpers import make_bag
from model_helpers import camera_frame, tiny_model_dir  # noqa: F401

from cosmos_ros.model.fingerprint import model_fingerprint
from cosmos_ros.model.loading import ModelDirectoryError, validate_model_dir
from cosmos_ros.model.tiny import make_tiny_model


@pytest.fixture(scope="module")
def two_tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny2")
    return make_tiny_model(root / "a", seed=0), make_tiny_model(root / "b", seed=0), root


def test_same_seed_gives_identical_files_and_fingerprint(two_tiny):
    a, b, root = two_tiny
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert {"model_index.json", "transformer/config.json", "scheduler/scheduler_config.json"} <= {
        f.as_posix() for f in files
    }
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert model_fingerprint(a) == model_fingerprint(b)
    assert model_fingerprint(a).startswith("sha256:")
    other = make_tiny_model(root / "c", seed=1)
    assert model_fingerprint(other) != model_fingerprint(a)


def test_layout_matches_released_model(two_tiny):
    a, _, _ = two_tiny
    index = json.loads((a / "model_index.json").read_text())
    assert index["_class_name"] == "Cosmos2_5_PredictBasePipeline"
    assert index["transformer"] == ["diffusers", "CosmosTransformer3DModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKLWan"]
    assert index["text_encoder"] == ["transformers", "Qwen2_5_VLForConditionalGeneration"]
    sched = json.loads((a / "scheduler/scheduler_config.json").read_text())
    assert sched["use_flow_sigmas"] and sched["use_karras_sigmas"] and sched["sigma_max"] == 200.0
    validate_model_dir(a)
    with pytest.raises(FileExistsError):
        make_tiny_model(a)


def _broken_copy(src, dst, edit):
    shutil.copytree(src, dst)
    edit(dst)
    return dst


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: (d / "model_index.json").unlink(), "no model_index.json"),
        (lambda d: shutil.rmtree(d / "vae"), r"vae"),
        (lambda d: (d / "transformer/diffusion_pytorch_model.safetensors").unlink(), "no .safetensors"),
        (
            lambda d: (d / "model_index.json").write_text(
                (d / "model_index.json").read_text().replace("Cosmos2_5_PredictBasePipeline", "WanPipeline")
            ),
            "different model family",
        ),
        (
            lambda d: (d / "model_index.json").write_text(
                (d / "model_index.json").read_text().replace("AutoencoderKLWan", "AutoencoderKL")
            ),
            "expected diffusers.AutoencoderKLWan",
        ),
    ],
)
def test_bad_directories_fail_with_named_cause(two_tiny, tmp_path, edit, message):
    a, _, _ = two_tiny
    broken = _broken_copy(a, tmp_path / "m", edit)
    with pytest.raises(ModelDirectoryError, match=message):
        validate_model_dir(broken)


def test_missing_directory_and_safety_policy(tmp_path, two_tiny, caplog):
    from cosmos_ros.model.runtime import CosmosRuntime
    from cosmos_ros.model.safety import make_safety_checker

    with pytest.raises(ModelDirectoryError, match="does not exist"):
        CosmosRuntime.load(tmp_path / "nope")
    with pytest.raises(ValueError, match="accepted: auto, required, off"):
        make_safety_checker("maybe")
    with caplog.at_level("WARNING"):
        checker, desc = make_safety_checker("off")
    assert desc == "off" and "OFF" in caplog.text
    frames = np.zeros((5, 8, 8, 3), np.uint8)
    assert checker.check_text_safety("x") and checker.check_video_safety(frames) is frames
    try:
        import cosmos_guardrail  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="cosmos_guardrail"):
            make_safety_checker("required")
        caplog.clear()
        with caplog.at_level("WARNING"):
            _, desc = make_safety_checker("auto")
        assert "not installed" in desc and "WITHOUT" in caplog.text


def test_cli_make_tiny_model_and_predict(tmp_path, capsys):
    import cv2

    from cosmos_ros.cli import main

    model = tmp_path / "m"
    assert main(["make-tiny-model", str(model)]) == 0
    assert main(["make-tiny-model", str(model)]) == 1  # refuses to overwrite
    assert "not empty" in capsys.readouterr().err
    img = tmp_path / "cam.png"
    cv2.imwrite(str(img), np.full((100, 140, 3), 128, np.uint8))
    out = tmp_path / "o" / "pred.mp4"
    args = [
        "predict",
        "--model",
        str(model),
        "--image",
        str(img),
        "--prompt",
        "the robot moves",
        "-o",
        str(out),
    ]
    assert main([*args, "--preset", "preview", "--steps", "1", "--safety-checker", "off"]) == 0
    assert out.is_file() and (tmp_path / "o" / "pred_first.png").is_file()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["settings"]["preset"] == "preview" and meta["settings"]["steps"] == 1
    capsys.readouterr()
    assert main([*args, "--num-frames", "8", "--safety-checker", "off"]) == 1
    assert "4k+1" in capsys.readouterr().err
    assert (
        main(
            [
                "predict",
                "--model",
                str(tmp_path / "none"),
                "--image",
                str(img),
                "--prompt",
                "x",
                "-o",
                str(out),
            ]
        )
        == 1
    )
    assert "does not exist" in capsys.readouterr().err


def _predict_args(model, source: list[str], out) -> list[str]:
    return ["predict", "--model", str(model), *source, "--prompt", "the robot moves", "-o", str(out),
            "--num-frames", "5", "--steps", "1", "--height", "32", "--width", "48",
            "--safety-checker", "off"]  # fmt: skip


def _assert_video(out, frames: int, height: int, width: int) -> None:
    from cosmos_ros.media.video import probe_video

    assert out.is_file() and out.with_suffix(".json").is_file()
    info = probe_video(out)
    assert (info.frame_count, info.height, info.width) == (frames, height, width)


def test_cli_predict_from_video_file(tiny_model_dir, tmp_path, capsys):
    from cosmos_ros.cli import main
    from cosmos_ros.media.video import write_video

    clip = write_video(tmp_path / "in.mp4", np.stack([camera_frame(80, 120, seed=i) for i in range(7)]), 10.0)
    out = tmp_path / "video_pred.mp4"
    assert main(_predict_args(tiny_model_dir, ["--video", str(clip)], out)) == 0, capsys.readouterr().err
    _assert_video(out, 5, 32, 48)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["settings"]["conditioning_frames"] == 5  # the clip's last 5 frames condition


def test_cli_predict_from_ros2_bag(tiny_model_dir, tmp_path, capsys):
    from cosmos_ros.cli import main

    bag = make_bag(tmp_path, "demo", "mcap", frames=6)
    out = tmp_path / "bag_pred.mp4"
    args = _predict_args(tiny_model_dir, ["--bag", str(bag), "--topic", "/camera/image_raw"], out)
    assert main([*args, "--bag-index", "3"]) == 0, capsys.readouterr().err
    _assert_video(out, 5, 32, 48)
    assert json.loads(out.with_suffix(".json").read_text())["settings"]["conditioning_frames"] == 1
    capsys.readouterr()
    assert main([*args, "--bag-index", "6"]) == 1
    assert (
        "topic /camera/image_raw has 6 image message(s); --bag-index accepts 0..5" in capsys.readouterr().err
    )
    wrong = _predict_args(tiny_model_dir, ["--bag", str(bag), "--topic", "/wrong"], out)
    assert main(wrong) == 1
    assert "no image topic /wrong; image topics in the bag (messages): /camera/image_raw (6)" in (
        capsys.readouterr().err
    )


def test_cli_predict_checks_its_output_and_options_before_the_model_loads(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    import cv2

    from cosmos_ros.cli import main
    from cosmos_ros.model.runtime import CosmosRuntime

    def refuse(*args, **kwargs):
        raise AssertionError("the model loaded although the arguments were invalid")

    monkeypatch.setattr(CosmosRuntime, "load", refuse)
    img = tmp_path / "cam.png"
    cv2.imwrite(str(img), camera_frame(40, 60))
    folder = tmp_path / "pred"
    folder.mkdir()
    cases = [
        (_predict_args(tiny_model_dir, ["--image", str(img)], folder), "is a folder"),
        (_predict_args(tiny_model_dir, ["--image", str(img)], tmp_path / "p.avi"), "ending in .mp4"),
        (
            [*_predict_args(tiny_model_dir, ["--image", str(img)], tmp_path / "p.mp4"), "--steps", "0"],
            "steps",
        ),
        ([*_predict_args(tiny_model_dir, ["--image", str(img)], tmp_path / "p.mp4"), "--height", "60"], "16"),
    ]
    for args, needle in cases:
        assert main(args) == 1
        assert needle in capsys.readouterr().err
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob("*_first.png"))


def test_cli_predict_takes_a_registry_reference(tiny_model_dir, tmp_path, capsys):
    import cv2
    from eval_helpers import make_tiny_adapter

    from cosmos_ros.cli import main
    from cosmos_ros.registry import open_registry

    with open_registry(tmp_path / "registry") as registry:
        ref = registry.register(
            make_tiny_adapter(tiny_model_dir, tmp_path / "adapter", seed=1), "arm"
        ).adapter_id
    img = tmp_path / "cam.png"
    cv2.imwrite(str(img), camera_frame(40, 60))
    out = tmp_path / "ref.mp4"
    args = [
        *_predict_args(tiny_model_dir, ["--image", str(img)], out),
        "--registry",
        str(tmp_path / "registry"),
    ]
    assert main([*args, "--adapter", "arm@1"]) == 0, capsys.readouterr().err
    assert f"adapter {ref} (draft)" in capsys.readouterr().out
    assert json.loads(out.with_suffix(".json").read_text())["adapter_id"] == ref
    assert main([*args, "--adapter", "nosuch@1"]) == 1
    assert "--adapter nosuch@1 (registry" in capsys.readouterr().err


def test_cli_bag_frame_removes_row_padding(tmp_path):
    # Drivers may pad each row (step > width * 3); rosbags-image ignores step, message_to_rgb does not.
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    from cosmos_ros.model.cli import _bag_frame

    rgb = camera_frame(10, 12)
    padded = np.zeros((10, 12 * 3 + 4), np.uint8)
    padded[:, : 12 * 3] = rgb.reshape(10, -1)
    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=0),
                                          frame_id="cam")  # fmt: skip
    msg = types["sensor_msgs/msg/Image"](header=header, height=10, width=12, encoding="rgb8", is_bigendian=0,
                                         step=padded.shape[1], data=padded.reshape(-1))  # fmt: skip
    bag = tmp_path / "padded"
    with Writer(bag, version=9) as writer:
        conn = writer.add_connection("/cam", "sensor_msgs/msg/Image", typestore=store)
        writer.write(conn, 1_000_000_000, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    assert np.array_equal(_bag_frame(bag, None, 0), rgb)


def test_cli_predict_reports_out_of_memory(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import cv2

    from cosmos_ros.cli import main
    from cosmos_ros.model.runtime import CosmosRuntime, PredictionOutOfMemory

    def exhausted(self, *args, **kwargs):
        raise PredictionOutOfMemory("out of accelerator memory at 432x768, 93 frames: try preset='preview'")

    monkeypatch.setattr(CosmosRuntime, "predict", exhausted)
    img = tmp_path / "cam.png"
    cv2.imwrite(str(img), camera_frame(40, 60))
    out = tmp_path / "oom.mp4"
    assert main(_predict_args(tiny_model_dir, ["--image", str(img)], out)) == 1
    err = capsys.readouterr().err
    assert not out.with_name("oom_first.png").exists()
    assert "out of accelerator memory" in err and "--preset preview" in err and "Traceback" not in err
    assert not out.exists()
