# ruff: noqa: F811  (pytest fixtures imported from model_helpers are redefined as arguments)
"""``cosmos-ros predict --json`` (issue 20): one JSON document on stdout with the prediction's figures.

Checked against the text output (the video's path, the registry line) and the files written: the mp4's
frame count and size, the metadata JSON's timings and adapter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_helpers import make_tiny_adapter
from model_helpers import image, predict_args, tiny_model_dir  # noqa: F401
from train_helpers import one_thread

from cosmos_ros.cli import main

_threads = pytest.fixture(autouse=True)(one_thread)


def _args(model: Path, image: Path, out: Path, *extra: str) -> list[str]:
    return predict_args(model, image, out, "--device", "cpu", "--dtype", "float32", *extra)


def test_predict_json_matches_the_text_and_the_files(tiny_model_dir, image, tmp_path, capsys):
    from cosmos_ros.media.video import read_video

    text_out = tmp_path / "text" / "pred.mp4"
    assert main(_args(tiny_model_dir, image, text_out)) == 0
    assert capsys.readouterr().out.strip() == str(text_out)

    out = tmp_path / "js" / "pred.mp4"
    assert main(_args(tiny_model_dir, image, out, "--json")) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # the whole of stdout is one document
    assert data["ok"] is True and data["video"] == str(out)
    stem = out.with_suffix("")
    assert data["files"] == [str(out), f"{stem}_first.png", f"{stem}_last.png", str(out.with_suffix(".json"))]
    assert all(Path(f).is_file() for f in data["files"])
    frames, fps = read_video(out)
    assert (data["frames"], data["height"], data["width"]) == (len(frames), 32, 48) == frames.shape[:3]
    assert data["frames"] == 5 and data["fps"] == pytest.approx(fps, abs=0.01)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert data["seconds"] == meta["timings"]["total_s"] > 0 and data["timings"] == meta["timings"]
    assert data["adapter"] is None and data["adapter_id"] is None and data["registry"] is None
    assert (data["steps"], data["seed"], data["device"]) == (1, 0, "cpu")
    # Same seed, same settings: the text run wrote the same video.
    assert (read_video(text_out)[0] == frames).all()


def test_predict_json_names_the_registry_adapter_and_keeps_stdout_clean(
    tiny_model_dir, image, tmp_path, capsys
):
    from cosmos_ros.registry import open_registry

    adapter = make_tiny_adapter(tiny_model_dir, tmp_path / "adapter", seed=1)
    registry = tmp_path / "registry"
    with open_registry(registry) as reg:
        record = reg.register(adapter, "tiny.pick")
    ref, status = record.adapter_id, record.status
    extra = ("--adapter", "tiny.pick", "--registry", str(registry))
    text_out = tmp_path / "text.mp4"
    assert main(_args(tiny_model_dir, image, text_out, *extra)) == 0
    text = capsys.readouterr().out.splitlines()
    assert text == [f"adapter {ref} ({status}) from registry {registry}", str(text_out)]

    out = tmp_path / "js.mp4"
    assert main(_args(tiny_model_dir, image, out, *extra, "--json")) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert f"adapter {ref} ({status}) from registry {registry}" in captured.err
    assert data["adapter"] == "tiny.pick" and data["adapter_id"] == ref and data["registry"] == str(registry)
    assert json.loads(out.with_suffix(".json").read_text())["adapter_id"] == ref


def test_predict_json_error_is_one_line_on_stderr_and_nothing_on_stdout(
    tiny_model_dir, image, tmp_path, capsys
):
    assert main(_args(tiny_model_dir, image, tmp_path / "bad.avi", "--json")) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("cosmos-ros: error: -o ")
