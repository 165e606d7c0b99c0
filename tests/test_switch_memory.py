"""Merged adapter switching keeps its pristine weights in host memory and still restores exactly.

Why: a second device copy of the targeted weights put peak GPU memory 3.3 GiB above stock
diffusers' (issue 21). These tests use a real (tiny) ``CosmosTransformer3DModel`` and adapters
written the stock peft/diffusers way, and compare against a freshly loaded copy of the model.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from diffusers import CosmosTransformer3DModel
from model_helpers import save_stock_lora

from cosmos_ros.model.adapters import read_adapter
from cosmos_ros.model.merged_adapters import MergedAdapterSwitcher, host_copy, pristine_placement

TINY = {
    "in_channels": 17,
    "out_channels": 16,
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "num_layers": 2,
    "mlp_ratio": 2.0,
    "text_embed_dim": 32,
    "adaln_lora_dim": 8,
    "max_size": (16, 32, 32),
    "patch_size": (1, 2, 2),
    "rope_scale": (1.0, 3.0, 3.0),
    "concat_padding_mask": True,
    "extra_pos_embed_type": None,
}
ATTN = ("to_q", "to_k", "to_v", "to_out.0")
FF = ("ff.net.0.proj", "ff.net.2")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Cosmos transformer with random (non-zero) weights on disk, the reference W0."""
    torch.manual_seed(0)
    model = CosmosTransformer3DModel(**TINY)
    with torch.no_grad():  # diffusers zero-initialises some layers; make every weight matter
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    folder = tmp_path_factory.mktemp("switch_memory") / "transformer"
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def adapters(saved_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Adapter A: LoRA on the attention projections; B: DoRA on attention and feed-forward."""
    model = CosmosTransformer3DModel.from_pretrained(saved_model)
    root = tmp_path_factory.mktemp("switch_memory_adapters")
    holder = SimpleNamespace(transformer=model)
    return {
        "a": save_stock_lora(holder, root / "a", rank=4, seed=1, targets=ATTN),
        "b": save_stock_lora(holder, root / "b", rank=2, seed=2, targets=ATTN + FF, use_dora=True),
    }


def load(saved_model: Path, dtype: torch.dtype) -> CosmosTransformer3DModel:
    return CosmosTransformer3DModel.from_pretrained(saved_model).to(dtype).eval().requires_grad_(False)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_switch_a_b_none_restores_freshly_loaded_weights(saved_model, adapters, dtype) -> None:
    model = load(saved_model, dtype)
    fresh = load(saved_model, dtype).state_dict()
    switcher = MergedAdapterSwitcher(model)
    switcher.stage("a", read_adapter(adapters["a"]))
    switcher.stage("b", read_adapter(adapters["b"]))
    ff = model.transformer_blocks[0].ff.net[2].weight
    q = model.transformer_blocks[1].attn1.to_q.weight

    switcher.activate("a")
    merged_a = {k: v.clone() for k, v in model.state_dict().items()}
    assert not torch.equal(q, fresh["transformer_blocks.1.attn1.to_q.weight"]), "adapter A merged nothing"
    assert torch.equal(ff, fresh["transformer_blocks.0.ff.net.2.weight"]), "A does not target ff"
    switcher.activate("b")
    assert not torch.equal(ff, fresh["transformer_blocks.0.ff.net.2.weight"]), "adapter B merged nothing"
    switcher.activate("a")  # B's feed-forward-only modules must come back to W0 too
    after_a = model.state_dict()
    assert all(torch.equal(after_a[k], merged_a[k]) for k in merged_a), "A after B differs from A"
    switcher.activate("b")
    switcher.activate(None)
    after = model.state_dict()
    changed = [k for k in fresh if not torch.equal(after[k], fresh[k])]
    assert not changed, f"not restored bit for bit: {changed[:5]}"


def test_merge_is_w0_plus_scaled_low_rank_from_the_host_copy(saved_model, adapters) -> None:
    """The merged weight is exactly round(W0 + scale * B @ A), computed in float32."""
    model = load(saved_model, torch.bfloat16)
    w0 = model.transformer_blocks[0].attn1.to_k.weight.detach().clone()
    staged = read_adapter(adapters["a"])
    key = "transformer_blocks.0.attn1.to_k"
    lora_a = next(v for k, v in staged.state_dict.items() if f"{key}.lora_A" in k)
    lora_b = next(v for k, v in staged.state_dict.items() if f"{key}.lora_B" in k)
    switcher = MergedAdapterSwitcher(model)
    switcher.stage("a", staged)
    switcher.activate("a")
    expected = torch.addmm(w0.float(), lora_b.float(), lora_a.float(), alpha=1.0).to(torch.bfloat16)
    assert torch.equal(model.transformer_blocks[0].attn1.to_k.weight, expected)


def test_pristine_copies_live_in_host_memory(saved_model, adapters) -> None:
    model = load(saved_model, torch.bfloat16)
    switcher = MergedAdapterSwitcher(model)
    switcher.stage("b", read_adapter(adapters["b"]))
    report = switcher.memory_report()
    targeted = [
        m.weight
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear)
        and any(name.endswith("." + t) for t in ATTN + FF)
        and name.startswith("transformer_blocks.")
    ]
    assert report["pristine_bytes"] == sum(w.numel() * w.element_size() for w in targeted)
    assert report["pristine_devices"] == ["cpu"]
    assert report["pristine_pinned"] is False  # no CUDA here: nothing to pin for
    # Copies, not views of the parameters (an in-place merge must leave them alone).
    data_ptrs = {w.data_ptr() for w in targeted}
    assert not data_ptrs & {t.data_ptr() for t in switcher._pristine.values()}


@pytest.mark.parametrize(
    ("device", "cuda_available", "pinned"),
    [("cuda:0", True, True), ("cuda", True, True), ("cpu", True, False), ("cuda:0", False, False),
     ("cpu", False, False)],
)  # fmt: skip
def test_pristine_placement_is_host_and_pins_only_for_cuda(device, cuda_available, pinned) -> None:
    where, pin = pristine_placement(torch.device(device), cuda_available=cuda_available)
    assert where == torch.device("cpu")
    assert where != torch.device(device) or device == "cpu"
    assert pin is pinned


def test_pristine_on_device_keeps_it_beside_the_weight_and_restores_the_same(saved_model, adapters) -> None:
    assert pristine_placement(torch.device("cuda:0"), cuda_available=True, on_device=True) == (
        torch.device("cuda:0"),
        False,
    )
    host, device = load(saved_model, torch.bfloat16), load(saved_model, torch.bfloat16)
    fresh = load(saved_model, torch.bfloat16).state_dict()
    switchers = [MergedAdapterSwitcher(host), MergedAdapterSwitcher(device, pristine_on_device=True)]
    for switcher in switchers:
        switcher.stage("a", read_adapter(adapters["a"]))
        switcher.stage("b", read_adapter(adapters["b"]))
        switcher.activate("b")
    assert all(torch.equal(host.state_dict()[k], v) for k, v in device.state_dict().items())
    for switcher in switchers:
        switcher.activate(None)
    assert all(torch.equal(device.state_dict()[k], fresh[k]) for k in fresh)


def test_host_copy_is_a_distinct_equal_tensor() -> None:
    weight = torch.nn.Parameter(torch.randn(8, 4, dtype=torch.bfloat16))
    copy = host_copy(weight, pin=False)
    assert copy.device == torch.device("cpu") and copy.dtype == torch.bfloat16
    assert torch.equal(copy, weight) and copy.data_ptr() != weight.data_ptr()
    assert not copy.requires_grad
    with torch.no_grad():
        weight.add_(1)
    assert not torch.equal(copy, weight)


def test_switching_a_compiled_model_does_not_recompile(saved_model, adapters) -> None:
    """In-place switching keeps dynamo's guards valid: no new frames compiled after a switch."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    model = load(saved_model, torch.float32)
    reference = load(saved_model, torch.float32)
    switcher = MergedAdapterSwitcher(model)
    switcher.stage("a", read_adapter(adapters["a"]))
    switcher.stage("b", read_adapter(adapters["b"]))
    counter = CompileCounter()
    for block in model.transformer_blocks:
        block.compile(backend=counter, fullgraph=False, dynamic=False)
    gen = torch.Generator().manual_seed(0)
    inputs = {
        "hidden_states": torch.randn(1, 16, 2, 8, 8, generator=gen),
        "condition_mask": torch.zeros(1, 1, 2, 8, 8),
        "timestep": torch.full((1, 1, 2, 1, 1), 0.5),
        "encoder_hidden_states": torch.randn(1, 6, 32, generator=gen),
        "padding_mask": torch.zeros(1, 1, 16, 16),
        "return_dict": False,
    }
    with torch.no_grad():
        switcher.activate("a")
        model(**inputs)
        frames = counter.frame_count
        assert frames > 0
        outputs = {}
        for name in ("b", None, "a"):
            switcher.activate(name)
            outputs[name] = model(**inputs)[0]
        assert counter.frame_count == frames, "a switch recompiled"
        base = reference(**inputs)[0]
    assert torch.equal(outputs[None], base)
    assert not torch.allclose(outputs["a"], base) and not torch.allclose(outputs["b"], base)
    torch._dynamo.reset()
