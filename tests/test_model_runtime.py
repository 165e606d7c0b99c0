# ruff: noqa: F811  (pytest fixtures imported from model_helpers are redefined as arguments)
"""Load -> predict -> mp4 on the tiny model; determinism, presets, cancel, progress, bad inputs."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from model_helpers import (  # noqa: F401
    PROMPT,
    camera_frame,
    frame,
    installed_safety_checker,
    recording_safety_checker,
    runtime,
    tiny_model_dir,
)

from cosmos_ros.media.video import probe_video
from cosmos_ros.model.runtime import CosmosRuntime, PredictionCancelled


def test_predict_writes_mp4_of_requested_size_and_is_deterministic(runtime, frame, tmp_path):
    first = runtime.predict(frame, PROMPT, seed=3, num_frames=9, steps=2)
    again = runtime.predict(frame, PROMPT, seed=3, num_frames=9, steps=2)
    other = runtime.predict(frame, PROMPT, seed=4, num_frames=9, steps=2)
    assert first.frames.dtype == np.uint8 and first.frames.shape == (9, 64, 96, 3)
    assert np.array_equal(first.frames, again.frames)
    assert not np.array_equal(first.frames, other.frames)
    meta = first.metadata
    assert meta["base_fingerprint"] == runtime.fingerprint and meta["seed"] == 3
    assert meta["adapter_id"] is None
    assert meta["settings"]["num_frames"] == 9 and meta["settings"]["steps"] == 2
    json.dumps(meta)  # metadata must be JSON-serialisable for sidecars and ROS feedback

    out = first.save(tmp_path / "pred.mp4")
    info = probe_video(out)
    assert (info.frame_count, info.height, info.width) == (9, 64, 96)
    assert info.fps == pytest.approx(first.fps)
    assert (tmp_path / "pred_first.png").is_file() and (tmp_path / "pred_last.png").is_file()


def test_video_to_world_and_explicit_size(runtime):
    clip = [camera_frame(90, 200, seed=i) for i in range(6)]
    res = runtime.predict(clip, PROMPT, num_frames=5, steps=1, height=48, width=64, fit="letterbox")
    assert res.frames.shape == (5, 48, 64, 3)
    assert res.metadata["settings"]["conditioning_latent_frames"] == 2


def test_tiny_full_preset_uses_hint_scaled_recipe(runtime, frame):
    res = runtime.predict(frame, PROMPT, preset="preview")
    preview = runtime.presets["preview"]
    assert res.frames.shape == (preview.num_frames, preview.height, preview.width, 3)
    assert runtime.presets["full"].num_frames == 9  # scaled down by the tiny model's hint file


def test_progress_and_cancel(runtime, frame):
    events = []
    cancel = threading.Event()

    def on_step(event):
        events.append(event)
        if event.step == 2:
            cancel.set()

    with pytest.raises(PredictionCancelled):
        runtime.predict(frame, PROMPT, steps=5, num_frames=5, on_step=on_step, cancel=cancel)
    # the encode stage opens and closes, then denoising reports each step until the cancel
    assert [(e.stage, e.step, e.total) for e in events] == [
        ("encode", 0, 1), ("encode", 1, 1), ("denoise", 1, 5), ("denoise", 2, 5)
    ]  # fmt: skip
    # still usable afterwards, and an uncancelled run reports every stage in order
    events.clear()
    cancel.clear()
    assert runtime.predict(frame, PROMPT, steps=3, num_frames=5, on_step=events.append).frames.shape[0] == 5
    assert [(e.stage, e.step) for e in events] == [
        ("encode", 0), ("encode", 1), ("denoise", 1), ("denoise", 2), ("denoise", 3),
        ("decode", 0), ("decode", 1),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"num_frames": 8}, "4k\\+1"),
        ({"num_frames": 1}, "4k\\+1"),
        ({"height": 50}, "multiple of 16"),
        ({"frames": np.zeros((64, 96, 3), np.float32)}, "uint8"),
        ({"frames": np.zeros((64, 96), np.uint8)}, "uint8 \\[H, W, 3\\]"),
        ({"frames": []}, "non-empty"),
        ({"preset": "ultra"}, "unknown preset"),
        ({"fit": "stretch"}, "fit"),
        ({"adapter": "nope"}, "not loaded"),
    ],
)
def test_bad_inputs_get_clear_errors(runtime, frame, kwargs, message):
    args = {"frames": frame, "prompt": PROMPT, **kwargs}
    with pytest.raises(ValueError, match=message):
        runtime.predict(args.pop("frames"), args.pop("prompt"), steps=1, **args)


def test_out_of_memory_is_reported_and_runtime_stays_usable(runtime, frame):
    import torch

    from cosmos_ros.model.runtime import PredictionOutOfMemory

    def exhaust(module, args, kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    handle = runtime.pipe.transformer.register_forward_pre_hook(exhaust, with_kwargs=True)
    try:
        with pytest.raises(PredictionOutOfMemory, match="preview"):
            runtime.predict(frame, PROMPT, steps=1, num_frames=5)
    finally:
        handle.remove()
    assert runtime.predict(frame, PROMPT, steps=1, num_frames=5).frames.shape == (5, 64, 96, 3)


def test_prompt_cache_skips_text_encoder_for_known_prompt(tiny_model_dir, frame, tmp_path):
    rt = CosmosRuntime.load(tiny_model_dir, dtype="float32", safety_checker="off", prompt_cache_dir=tmp_path)
    try:
        rt.predict(frame, PROMPT, steps=1, num_frames=5)
        calls = []
        hook = rt.pipe.text_encoder.register_forward_pre_hook(lambda *a: calls.append(1))
        rt.predict(frame, PROMPT, steps=1, num_frames=5, seed=9)
        hook.remove()
        assert calls == []
        rt.release_text_encoder()
        assert rt.pipe.text_encoder is None
    finally:
        rt.close()
    # a fresh runtime reads the disk cache: the text encoder is never even loaded
    rt2 = CosmosRuntime.load(tiny_model_dir, dtype="float32", safety_checker="off", prompt_cache_dir=tmp_path)
    try:
        rt2.predict(frame, PROMPT, steps=1, num_frames=5)
        assert rt2.pipe.text_encoder is None and rt2.stats["text_encoder_loads"] == 0
        assert rt2.pipe.tokenizer is None  # nor the tokenizer: it comes with the encoder
        rt2.predict(frame, "A new prompt about a door", steps=1, num_frames=5, guidance=1.0)
        assert rt2.stats["text_encoder_loads"] == 1 and rt2.stats["text_encoder_calls"] == 1
        assert rt2.pipe.tokenizer is not None
    finally:
        rt2.close()


def _as_the_guardrail(monkeypatch: pytest.MonkeyPatch, checker) -> None:
    """Make diffusers (and the runtime) take ``checker`` for cosmos_guardrail's CosmosSafetyChecker."""
    from diffusers.pipelines.cosmos import pipeline_cosmos2_5_predict

    monkeypatch.setattr(pipeline_cosmos2_5_predict, "CosmosSafetyChecker", type(checker))


@pytest.mark.parametrize("as_guardrail", [True, False], ids=["guardrail-class", "other-checker"])
def test_fast_engine_runs_the_video_check_and_honours_its_verdict(runtime, frame, monkeypatch, as_guardrail):
    # The fast engine never calls the pipeline, so the runtime itself must check every video,
    # also when the checker is the guardrail class the stock pipeline would have run.
    assert runtime.engine == "fast"
    checker = recording_safety_checker("pass")
    if as_guardrail:
        _as_the_guardrail(monkeypatch, checker)
    with installed_safety_checker(runtime, checker):
        res = runtime.predict(frame, PROMPT, steps=1, num_frames=5)
        assert checker.prompts == [PROMPT]
        assert len(checker.videos) == 1 and checker.videos[0].shape == (5, 64, 96, 3)
        assert np.array_equal(checker.videos[0], res.frames) and res.frames.any()

        checker.verdict = "blank"
        blanked = runtime.predict(frame, PROMPT, steps=1, num_frames=5)
        assert len(checker.videos) == 2
        assert blanked.frames.shape == (5, 64, 96, 3) and not blanked.frames.any()

        checker.verdict = "refuse"
        with pytest.raises(ValueError, match="refused the generated video"):
            runtime.predict(frame, PROMPT, steps=1, num_frames=5)
        assert len(checker.videos) == 3
    assert runtime.predict(frame, PROMPT, steps=1, num_frames=5).frames.any()  # its own checker is back


def test_stock_engine_checks_each_video_once_and_honours_a_refusal(tiny_model_dir, frame, monkeypatch):
    rt = CosmosRuntime.load(tiny_model_dir, dtype="float32", safety_checker="off", engine="stock")
    try:
        checker = recording_safety_checker("blank")
        _as_the_guardrail(monkeypatch, checker)  # the pipeline runs the check itself
        with installed_safety_checker(rt, checker):
            res = rt.predict(frame, PROMPT, steps=1, num_frames=5)
            assert len(checker.videos) == 1 and not res.frames.any()
            checker.verdict = "refuse"
            with pytest.raises(ValueError, match="refused the generated video"):
                rt.predict(frame, PROMPT, steps=1, num_frames=5)
            assert len(checker.videos) == 2
        assert "check_video_safety" not in vars(checker)  # the counting wrapper was removed
        monkeypatch.undo()
        other = recording_safety_checker("blank")  # not the guardrail class: the runtime checks it
        with installed_safety_checker(rt, other):
            assert not rt.predict(frame, PROMPT, steps=1, num_frames=5).frames.any()
            assert len(other.videos) == 1
    finally:
        rt.close()
