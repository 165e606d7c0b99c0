# ruff: noqa: F811  (pytest fixtures imported from model_helpers are redefined as arguments)
"""`cosmos-ros predict` on bad input (issue 19): refused by name in one line, never a wrong video.

Non-finite options, adapters and predictions; files -o never named; prompts past the text
encoder's limit; paths and model files that used to end in a traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from model_helpers import image, predict_args, tiny_model_dir  # noqa: F401

from cosmos_ros.cli import main


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("cosmos-ros: error: "), err
    assert not any("Traceback" in line for line in err)
    return err[-1]


def _no_outputs(out: Path) -> None:
    stem = out.with_suffix("")
    for path in (out, out.with_suffix(".json"), Path(f"{stem}_first.png"), Path(f"{stem}_last.png")):
        assert not path.exists(), path


def _model_must_not_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from cosmos_ros.model.runtime import CosmosRuntime

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model loaded although the arguments were invalid")

    monkeypatch.setattr(CosmosRuntime, "load", refuse)


def _set_tensor(file: Path, key: str | None, value: float) -> str:
    """Rewrite one tensor of a safetensors file (the first one when ``key`` is None) to ``value``."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(file, framework="pt") as fh:
        metadata = fh.metadata()
    tensors = load_file(file)
    key = key or sorted(tensors)[0]
    tensors[key] = tensors[key].clone().fill_(value)
    save_file(tensors, file, metadata=metadata)
    return key


# ------------------------------------------------------------------------------ non-finite values
@pytest.mark.parametrize(
    ("option", "value", "needles"),
    [
        ("--guidance", "nan", ("--guidance must be a finite number >= 0", "got nan")),
        ("--guidance", "inf", ("--guidance must be a finite number >= 0", "got inf")),
        ("--guidance", "-1", ("--guidance must be a finite number >= 0", "got -1.0")),
        ("--num-frames", "10001", ("--num-frames must be of the form 4k+1 from 5 to 509", "got 10001")),
        ("--height", "4096", ("--height must be a positive multiple of 16 up to 1920", "got 4096")),
    ],
)
def test_out_of_range_options_are_refused_by_name_before_the_model_loads(
    tiny_model_dir, image, tmp_path, capsys, monkeypatch, option, value, needles
):
    _model_must_not_load(monkeypatch)
    out = tmp_path / "p.mp4"
    args = predict_args(tiny_model_dir, image, out)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    assert main(args) == 1
    message = _one_line_error(capsys)
    assert all(needle in message for needle in needles), message
    _no_outputs(out)


def test_the_runtime_refuses_non_finite_guidance_too():
    # The generation node passes guidance straight to the runtime: the same check applies there.
    from cosmos_ros.model.presets import PRESETS
    from cosmos_ros.model.runtime import _settings

    for bad in (float("nan"), float("inf"), np.float32("nan"), True, "7"):
        with pytest.raises(ValueError, match="guidance must be a finite number >= 0"):
            _settings(PRESETS["full"], None, None, bad, None, None, "crop", 0)
    assert _settings(PRESETS["full"], None, None, np.float32(0.5), None, None, "crop", 0)["guidance"] == 0.5


def test_an_adapter_holding_nan_weights_is_refused_naming_the_file_and_tensor(
    tiny_model_dir, image, tmp_path, capsys
):
    from eval_helpers import make_tiny_adapter

    folder = make_tiny_adapter(tiny_model_dir, tmp_path / "adapter", seed=1)
    weights = folder / "pytorch_lora_weights.safetensors"
    key = _set_tensor(weights, None, float("nan"))
    out = tmp_path / "nan_adapter.mp4"
    assert main(predict_args(tiny_model_dir, image, out, "--adapter", str(folder))) == 1
    message = _one_line_error(capsys)
    assert f"{weights}: tensor {key} holds non-finite values" in message, message
    _no_outputs(out)


@pytest.mark.parametrize("engine", ["fast", "stock"])
def test_a_non_finite_prediction_is_an_error_not_a_black_video(
    tiny_model_dir, image, tmp_path, capsys, engine
):
    # A base weight gone NaN (a flipped exponent bit) passes every structural check; the prediction
    # is NaN, which uint8 conversion used to turn into an all-black video written with exit 0.
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    _set_tensor(
        model / "transformer" / "diffusion_pytorch_model.safetensors", "proj_out.weight", float("nan")
    )
    out = tmp_path / "nan.mp4"
    assert main(predict_args(model, image, out, "--engine", engine)) == 1
    message = _one_line_error(capsys)
    assert "came out non-finite (NaN or inf)" in message and "no video was made" in message, message
    assert f"cosmos-ros model verify {model}" in message
    _no_outputs(out)


# ------------------------------------------------------------------------------ files -o never named
def test_predict_refuses_to_replace_files_beside_the_video_unless_told(
    tiny_model_dir, image, tmp_path, capsys
):
    out = tmp_path / "out.mp4"
    mine = out.with_suffix(".json")
    mine.write_text('{"mine": true}\n')
    assert main(predict_args(tiny_model_dir, image, out)) == 1
    message = _one_line_error(capsys)
    assert f"{mine} already exists" in message and "--overwrite" in message, message
    assert mine.read_text() == '{"mine": true}\n' and not out.exists()

    assert main(predict_args(tiny_model_dir, image, out, "--overwrite")) == 0, capsys.readouterr().err
    assert out.is_file() and "base_fingerprint" in json.loads(mine.read_text())
    capsys.readouterr()
    assert main(predict_args(tiny_model_dir, image, out)) == 1  # the video itself and its stills too
    assert "out.mp4, " in _one_line_error(capsys)


# ------------------------------------------------------------------------------ long prompts
def test_a_prompt_past_the_text_encoders_limit_is_warned_with_token_counts(
    tiny_model_dir, image, tmp_path, capsys, caplog
):
    import re

    out = tmp_path / "long.mp4"
    args = predict_args(tiny_model_dir, image, out)
    args[args.index("--prompt") + 1] = "The robot arm picks up the red cube and puts it in the bin. " * 40
    with caplog.at_level("WARNING", logger="cosmos_ros"):
        assert main(args) == 0, capsys.readouterr().err
    warned = (
        r"prompt is (\d+) tokens \(with the chat template\), over the text encoder's limit of 512: its last "
    )
    found = re.search(warned + r"(\d+) tokens are cut off", caplog.text)
    assert found, caplog.text
    assert int(found[1]) > 512 and int(found[2]) == int(found[1]) - 512
    caplog.clear()
    short = predict_args(tiny_model_dir, image, tmp_path / "short.mp4")
    with caplog.at_level("WARNING", logger="cosmos_ros"):
        assert main(short) == 0
    assert "tokens (with the chat template)" not in caplog.text


# ------------------------------------------------------------------------------ tracebacks -> one line
def test_bad_paths_are_one_line_errors_naming_them(tiny_model_dir, image, tmp_path, capsys, monkeypatch):
    _model_must_not_load(monkeypatch)
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [
        (predict_args(tiny_model_dir, image, afile / "x.mp4"), f"-o {afile / 'x.mp4'}: {afile} is a file"),
        (
            predict_args(tiny_model_dir, image, tmp_path / "c.mp4", "--prompt-cache", str(image)),
            f"prompt cache {image} is a file",
        ),
        (predict_args(image, image, tmp_path / "m.mp4"), f"model directory {image} is a file, not a folder"),
    ]
    for args, needle in cases:
        assert main(args) == 1
        message = _one_line_error(capsys)
        assert needle in message, message
    assert afile.read_text() == "x"


def test_a_file_that_is_no_bag_is_named_with_what_it_holds(tiny_model_dir, tmp_path, capsys):
    """``--bag rand.bag`` once ended in "'utf-8' codec can't decode"; now it says what the file is."""
    bag = tmp_path / "rand.bag"
    bag.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)))
    out = tmp_path / "b.mp4"
    args = predict_args(tiny_model_dir, bag, out)
    args[args.index("--image")] = "--bag"
    assert main(args) == 1
    message = _one_line_error(capsys)
    assert f"cannot open bag {bag}: it is unknown data" in message and "not a ROS 1 bag" in message, message
    _no_outputs(out)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1000])


def _damage_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[20:30] = b"xxxxxxxxxx"
    path.write_bytes(bytes(data))


def _edit_config(**fields: object):
    def edit(path: Path) -> None:
        config = json.loads(path.read_text())
        config.update(fields)
        path.write_text(json.dumps(config))

    return edit


@pytest.mark.parametrize(
    ("rel", "damage", "needle"),
    [
        (
            "transformer/diffusion_pytorch_model.safetensors",
            _truncate,
            "bytes of tensor data but its header lists",
        ),
        (
            "transformer/diffusion_pytorch_model.safetensors",
            _damage_header,
            "its safetensors header is damaged",
        ),
        ("transformer/config.json", lambda p: p.write_text(p.read_text()[:100]), "not valid JSON"),
        ("transformer/config.json", _edit_config(num_layers="two"), "cannot load the transformer"),
        ("transformer/config.json", _edit_config(num_attention_heads=3), "cannot load the transformer"),
    ],
    ids=["truncated", "header", "json", "type", "shape"],
)
def test_damaged_model_files_are_one_line_errors_naming_them(
    tiny_model_dir, image, tmp_path, capsys, rel, damage, needle
):
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    damage(model / rel)
    out = tmp_path / "d.mp4"
    assert main(predict_args(model, image, out)) == 1
    message = _one_line_error(capsys)
    named = (
        str(model / rel)
        if rel.endswith("safetensors") or needle == "not valid JSON"
        else str(model / "transformer")
    )
    assert named in message and needle in message, message
    _no_outputs(out)
