"""Tiny model determinism, fingerprints, strict directory validation, safety policy, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

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
