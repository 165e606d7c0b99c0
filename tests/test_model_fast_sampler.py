"""The fast denoising loop and merged adapters reproduce the stock pipeline's math."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_helpers import PROMPT, camera_frame, runtime, save_stock_lora, tiny_model_dir  # noqa: F401

from cosmos_ros.model import fast_sampler as fs
from cosmos_ros.model.adapters import read_adapter
from cosmos_ros.model.merged_adapters import MergedAdapterSwitcher
from cosmos_ros.model.runtime import CosmosRuntime


@pytest.fixture(scope="module")
def fast_runtime(tiny_model_dir):  # noqa: F811
    rt = CosmosRuntime.load(tiny_model_dir, device="cpu", dtype="float32", safety_checker="off")
    yield rt
    rt.close()


def fast_predict(rt: CosmosRuntime, frames: list[np.ndarray], seed: int, approximation=None,
                 forwards: list[int] | None = None) -> np.ndarray:  # fmt: skip
    from diffusers.pipelines.cosmos.pipeline_cosmos2_5_predict import DEFAULT_NEGATIVE_PROMPT

    from cosmos_ros.media.frame_fit import fit_frame

    preset = rt.presets["full"]
    h, w, n = preset.height, preset.width, preset.num_frames
    fitted = [fit_frame(f, h, w) for f in frames]
    video, frames_in = fs.conditioning_video(rt.pipe, fitted, n, h, w)
    inputs = fs.prepare_inputs(
        rt.pipe, video, frames_in, num_frames=n, height=h, width=w,
        prompt_embeds=rt.encode_prompt(PROMPT),
        negative_prompt_embeds=rt.encode_prompt(DEFAULT_NEGATIVE_PROMPT),
        generator=torch.Generator("cpu").manual_seed(seed),
    )  # fmt: skip
    hook = None
    if forwards is not None:
        hook = rt.pipe.transformer.register_forward_hook(lambda *a: forwards.append(1))
    try:
        latents = fs.denoise(rt.pipe, inputs, steps=preset.steps, guidance=preset.guidance,
                             approximation=approximation)  # fmt: skip
    finally:
        if hook is not None:
            hook.remove()
    return fs.decode(rt.pipe, latents, n)


@pytest.mark.parametrize("num_conditioning", [1, 5], ids=["image-to-world", "video-to-world"])
def test_fast_loop_matches_stock_pipeline(runtime, fast_runtime, num_conditioning: int) -> None:  # noqa: F811
    frames = [camera_frame(seed=i) for i in range(num_conditioning)]
    stock = runtime.predict(frames, PROMPT, adapter=None, seed=11).frames
    fast = fast_predict(fast_runtime, frames, seed=11)
    assert fast.shape == stock.shape
    assert np.abs(fast.astype(int) - stock.astype(int)).max() <= 1


@pytest.mark.parametrize("use_dora", [False, True], ids=["lora", "dora"])
def test_merged_adapter_matches_peft_and_restores_base(runtime, fast_runtime, tmp_path, use_dora) -> None:  # noqa: F811
    folder = save_stock_lora(runtime.pipe, tmp_path / "adapter", use_dora=use_dora, seed=5)
    runtime.load_adapter("a", folder)
    frame = camera_frame(seed=3)
    with_peft = runtime.predict(frame, PROMPT, adapter="a", seed=2).frames
    base_stock = runtime.predict(frame, PROMPT, adapter=None, seed=2).frames
    runtime.unload_adapter("a")

    transformer = fast_runtime.pipe.transformer
    before = {k: v.clone() for k, v in transformer.state_dict().items()}
    switcher = MergedAdapterSwitcher(transformer)
    switcher.stage("a", read_adapter(folder))
    switcher.activate("a")
    try:
        merged = fast_predict(fast_runtime, [frame], seed=2)
    finally:
        switcher.activate(None)
    assert np.abs(merged.astype(int) - with_peft.astype(int)).max() <= 1
    assert np.abs(merged.astype(int) - base_stock.astype(int)).max() > 1, "the adapter changed nothing"
    after = transformer.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "base weights not restored bit for bit"


def test_merged_adapter_refuses_other_shapes(fast_runtime, tmp_path) -> None:
    from safetensors.torch import save_file

    from cosmos_ros.model.adapters import AdapterIncompatible

    block = "transformer.transformer_blocks.0.attn1.to_q"
    save_file({f"{block}.lora_A.weight": torch.zeros(4, 7), f"{block}.lora_B.weight": torch.zeros(7, 4)},
              tmp_path / "pytorch_lora_weights.safetensors")  # fmt: skip
    with pytest.raises(AdapterIncompatible, match="to_q has LoRA shapes"):
        MergedAdapterSwitcher(fast_runtime.pipe.transformer).stage("bad", read_adapter(tmp_path))


def test_approximation_skips_forwards_and_stays_close(fast_runtime) -> None:
    frame = camera_frame(seed=4)
    exact_calls: list[int] = []
    approx_calls: list[int] = []
    exact = fast_predict(fast_runtime, [frame], seed=1, forwards=exact_calls)
    approx = fast_predict(fast_runtime, [frame], seed=1, approximation=fs.APPROX_FAST, forwards=approx_calls)
    steps = fast_runtime.presets["full"].steps
    assert len(exact_calls) == 2 * steps
    assert len(approx_calls) < len(exact_calls)
    assert not np.array_equal(exact, approx)
