"""The fast engine (fast_sampler + merged adapters) reproduces the stock pipeline and peft."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_helpers import PROMPT, camera_frame, save_stock_lora, tiny_model_dir  # noqa: F401

from cosmos_ros.model.adapters import AdapterIncompatible, read_adapter
from cosmos_ros.model.merged_adapters import MergedAdapterSwitcher
from cosmos_ros.model.runtime import CosmosRuntime


@pytest.fixture(scope="module")
def stock_runtime(tiny_model_dir):  # noqa: F811
    rt = CosmosRuntime.load(
        tiny_model_dir, device="cpu", dtype="float32", safety_checker="off", engine="stock"
    )
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def fast_runtime(tiny_model_dir):  # noqa: F811
    rt = CosmosRuntime.load(
        tiny_model_dir, device="cpu", dtype="float32", safety_checker="off", engine="fast"
    )
    yield rt
    rt.close()


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.mark.parametrize("num_conditioning", [1, 5], ids=["image-to-world", "video-to-world"])
def test_fast_engine_matches_stock_pipeline(stock_runtime, fast_runtime, num_conditioning: int) -> None:
    frames = [camera_frame(seed=i) for i in range(num_conditioning)]
    stock = stock_runtime.predict(frames, PROMPT, adapter=None, seed=11)
    fast = fast_runtime.predict(frames, PROMPT, adapter=None, seed=11)
    assert max_diff(fast.frames, stock.frames) <= 1
    assert fast.metadata["settings"]["engine"] == "fast"
    assert {"vae_encode_s", "denoise_s", "vae_decode_s"} <= set(fast.metadata["timings"])


@pytest.mark.parametrize("use_dora", [False, True], ids=["lora", "dora"])
def test_merged_adapter_matches_peft(stock_runtime, fast_runtime, tmp_path, use_dora) -> None:
    folder = save_stock_lora(stock_runtime.pipe, tmp_path / "adapter", use_dora=use_dora, seed=5)
    frame = camera_frame(seed=3)
    outputs = {}
    for label, rt in (("stock", stock_runtime), ("fast", fast_runtime)):
        rt.load_adapter("a", folder)
        try:
            outputs[label] = rt.predict(frame, PROMPT, adapter="a", seed=2).frames
            outputs[label + "_base"] = rt.predict(frame, PROMPT, adapter=None, seed=2).frames
        finally:
            rt.unload_adapter("a")
    assert max_diff(outputs["fast"], outputs["stock"]) <= 1
    assert max_diff(outputs["fast_base"], outputs["stock_base"]) <= 1
    assert max_diff(outputs["fast"], outputs["fast_base"]) > 1, "the adapter changed nothing"


def test_switching_restores_base_weights_bit_for_bit(fast_runtime, tmp_path) -> None:
    transformer = fast_runtime.pipe.transformer
    before = {k: v.clone() for k, v in transformer.state_dict().items()}
    first = save_stock_lora(fast_runtime.pipe, tmp_path / "one", seed=1)
    second = save_stock_lora(fast_runtime.pipe, tmp_path / "two", seed=2, use_dora=True)
    switcher = MergedAdapterSwitcher(transformer)
    switcher.stage("one", read_adapter(first))
    switcher.stage("two", read_adapter(second))
    switcher.activate("one")
    merged_one = transformer.transformer_blocks[0].attn1.to_q.weight.clone()
    switcher.activate("two")
    switcher.activate("one")
    assert torch.equal(transformer.transformer_blocks[0].attn1.to_q.weight, merged_one)
    switcher.activate(None)
    after = transformer.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "base weights not restored bit for bit"


def test_merged_adapter_refuses_other_shapes(fast_runtime, tmp_path) -> None:
    from safetensors.torch import save_file

    block = "transformer.transformer_blocks.0.attn1.to_q"
    save_file(
        {f"{block}.lora_A.weight": torch.zeros(4, 7), f"{block}.lora_B.weight": torch.zeros(7, 4)},
        tmp_path / "pytorch_lora_weights.safetensors",
    )
    with pytest.raises(AdapterIncompatible, match="to_q has LoRA shapes"):
        MergedAdapterSwitcher(fast_runtime.pipe.transformer).stage("bad", read_adapter(tmp_path))


def test_approximate_mode_skips_forwards_and_says_so(fast_runtime, stock_runtime) -> None:
    frame = camera_frame(seed=4)
    calls: list[int] = []
    hook = fast_runtime.pipe.transformer.register_forward_hook(lambda *a: calls.append(1))
    try:
        exact = fast_runtime.predict(frame, PROMPT, adapter=None, seed=1)
        exact_calls = len(calls)
        approx = fast_runtime.predict(frame, PROMPT, adapter=None, seed=1, approximate=True)
    finally:
        hook.remove()
    assert exact_calls == 2 * exact.metadata["settings"]["steps"]
    assert len(calls) - exact_calls < exact_calls
    assert approx.metadata["settings"]["approximate"]["guidance_every"] >= 2
    assert exact.metadata["settings"]["approximate"] is None
    assert not np.array_equal(exact.frames, approx.frames)
    with pytest.raises(ValueError, match="needs the fast engine"):
        stock_runtime.predict(frame, PROMPT, approximate=True)


def test_warmup_runs_a_step_without_the_text_encoder(fast_runtime) -> None:
    loads = fast_runtime.stats["text_encoder_loads"]
    calls: list[int] = []
    hook = fast_runtime.pipe.transformer.register_forward_hook(lambda *a: calls.append(1))
    try:
        seconds = fast_runtime.warmup("full")
    finally:
        hook.remove()
    assert seconds > 0 and calls == [1]
    assert fast_runtime.stats["text_encoder_loads"] == loads
    with pytest.raises(ValueError, match="unknown preset"):
        fast_runtime.warmup("fastest")


def test_batched_guidance_is_the_same_math(fast_runtime) -> None:
    from diffusers.pipelines.cosmos.pipeline_cosmos2_5_predict import DEFAULT_NEGATIVE_PROMPT

    from cosmos_ros.model import fast_sampler

    preset = fast_runtime.presets["full"]
    frame = camera_frame(height=preset.height, width=preset.width, seed=6)
    video, frames_in = fast_sampler.conditioning_video(frame, 1)
    latents = []
    for batched in (False, True):
        inputs = fast_sampler.prepare_inputs(
            fast_runtime.pipe, video, frames_in, num_frames=preset.num_frames, height=preset.height,
            width=preset.width, prompt_embeds=fast_runtime.encode_prompt(PROMPT),
            negative_prompt_embeds=fast_runtime.encode_prompt(DEFAULT_NEGATIVE_PROMPT),
            generator=torch.Generator("cpu").manual_seed(3),
        )  # fmt: skip
        latents.append(
            fast_sampler.denoise(
                fast_runtime.pipe, inputs, steps=preset.steps, guidance=7.0, batch_guidance=batched
            )
        )
    assert torch.allclose(latents[0], latents[1], rtol=1e-4, atol=1e-4)
