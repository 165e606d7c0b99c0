"""Unit tests of the trainer's pieces: config, objective, adapters (tiny in-memory transformer)."""

from __future__ import annotations

import re

import pytest
import torch
from cosmos_ros.training.config import TrainConfig, config_reference, load_config, parse_override
from cosmos_ros.training.objective import (
    build_inputs,
    draw_sample,
    per_sample_loss,
    predict_velocity,
    sample_generator,
    shifted_logit_normal,
)
from train_helpers import one_thread

_threads = pytest.fixture(autouse=True)(one_thread)


def test_recipe_config_matches_published_recipe():
    cfg = load_config("lora_recipe")
    assert (cfg.height, cfg.width, cfg.num_frames, cfg.rank, cfg.alpha) == (432, 768, 93, 32, 32)
    assert cfg.learning_rate == 2**-14.5 and cfg.warmup_steps == 1000 and cfg.max_grad_norm == 1.0
    assert cfg.target_modules == ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]
    assert cfg.prompt_dropout == 0.2 and cfg.sigma_shift == 5 and cfg.cond_frame_probs == [0.5, 0.5]
    assert load_config("dora_recipe").adapter_type == "dora"
    for name in TrainConfig.__dataclass_fields__:
        assert name in config_reference()


def test_overrides_and_clear_errors():
    cfg = load_config("tiny_cpu", ["rank=4", "target_modules=[to_q, to_v]", "prompt_prefix=Robot: "])
    assert cfg.rank == 4 and cfg.target_modules == ["to_q", "to_v"] and cfg.prompt_prefix == "Robot: "
    with pytest.raises(ValueError, match="4k\\+1"):
        load_config("tiny_cpu", ["num_frames=8"])
    with pytest.raises(ValueError, match="adapter_type"):
        load_config("tiny_cpu", ["adapter_type=loha"])
    with pytest.raises(ValueError, match="unknown field"):
        parse_override("ranks=3")
    with pytest.raises(ValueError, match="multiple of 16"):
        load_config("tiny_cpu", ["height=70"])
    # a bare `no` is YAML's false; it still means "no mixed precision", anything else is refused
    assert load_config("lora_recipe", ["mixed_precision=no"]).mixed_precision == "no"
    with pytest.raises(ValueError, match=re.escape("mixed_precision='fp16' is invalid; accepted: bf16 | no")):
        load_config("lora_recipe", ["mixed_precision=fp16"])


def test_sigma_distribution_is_shifted_towards_noise():
    u = torch.randn(20000, generator=torch.Generator().manual_seed(0))
    s = shifted_logit_normal(u, 5.0)
    assert 0 < s.min() and s.max() < 1
    # shift 5 moves the median from 0.5 to 5*0.5/(1+4*0.5) = 0.8333
    assert abs(float(s.median()) - 5 / 6) < 0.01


def test_inputs_follow_the_pipeline_conditioning():
    clean = torch.randn(2, 16, 4, 2, 3)
    noise = torch.randn_like(clean)
    inputs = build_inputs(clean, noise, torch.tensor([0.3, 0.9]), torch.tensor([1, 2]), 1e-4, torch.float32)
    # conditioning frames stay clean, the others are x_t = s*noise + (1-s)*clean
    assert torch.equal(inputs.hidden_states[0, :, 0], clean[0, :, 0])
    assert torch.equal(inputs.hidden_states[1, :, :2], clean[1, :, :2])
    torch.testing.assert_close(inputs.hidden_states[0, :, 1:], 0.3 * noise[0, :, 1:] + 0.7 * clean[0, :, 1:])
    assert inputs.timestep.shape == (2, 1, 4, 1, 1)
    assert inputs.timestep[1, 0, :2].flatten().tolist() == pytest.approx([1e-4, 1e-4])
    assert inputs.timestep[1, 0, 2:].flatten().tolist() == pytest.approx([0.9, 0.9])
    assert inputs.loss_mask[:, 0, :, 0, 0].tolist() == [[0, 1, 1, 1], [0, 0, 1, 1]]
    torch.testing.assert_close(inputs.target, noise - clean)
    # loss ignores conditioning frames: a prediction wrong only there costs nothing
    pred = inputs.target.clone()
    pred[:, :, 0] += 100.0
    assert per_sample_loss(pred, inputs).abs().max() == 0


def test_draws_depend_only_on_seed_and_key():
    a = draw_sample(
        sample_generator(3, 17),
        (16, 3, 2, 2),
        mean=0,
        std=1,
        shift=5,
        cond_frame_probs=[0.5, 0.5],
        prompt_dropout=0.2,
    )
    b = draw_sample(
        sample_generator(3, 17),
        (16, 3, 2, 2),
        mean=0,
        std=1,
        shift=5,
        cond_frame_probs=[0.5, 0.5],
        prompt_dropout=0.2,
    )
    c = draw_sample(
        sample_generator(3, 18),
        (16, 3, 2, 2),
        mean=0,
        std=1,
        shift=5,
        cond_frame_probs=[0.5, 0.5],
        prompt_dropout=0.2,
    )
    assert a.sigma == b.sigma and torch.equal(a.noise, b.noise)
    assert not torch.equal(a.noise, c.noise)
    counts = [
        draw_sample(
            sample_generator(0, k),
            (1,),
            mean=0,
            std=1,
            shift=5,
            cond_frame_probs=[0.5, 0.5],
            prompt_dropout=0.2,
        )
        for k in range(400)
    ]
    assert 0.4 < sum(d.num_cond_frames == 2 for d in counts) / 400 < 0.6
    assert 0.12 < sum(d.drop_prompt for d in counts) / 400 < 0.28


def _small_transformer(dtype: torch.dtype = torch.float32, num_layers: int = 2):
    from diffusers import CosmosTransformer3DModel

    torch.manual_seed(0)
    return CosmosTransformer3DModel(
        in_channels=17,
        out_channels=16,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=num_layers,
        mlp_ratio=2.0,
        text_embed_dim=32,
        adaln_lora_dim=8,
        rope_scale=(1.0, 3.0, 3.0),
        extra_pos_embed_type=None,
        use_crossattn_projection=True,
        crossattn_proj_in_channels=32,
        encoder_hidden_states_channels=32,
    ).to(dtype)


@pytest.mark.parametrize("adapter_type", ["lora", "dora"])
def test_adapter_on_in_memory_transformer_learns_one_batch(adapter_type):
    from cosmos_ros.training.adapters import attach_adapter

    model = _small_transformer(torch.bfloat16, num_layers=1)
    params = attach_adapter(
        model, adapter_type, 4, 4, ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]
    )
    assert params and all(p.dtype == torch.float32 for p in params)
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora" not in n)
    clean = torch.randn(1, 16, 3, 4, 4)
    noise = torch.randn_like(clean)
    text = torch.randn(1, 8, 32, dtype=torch.bfloat16)
    inputs = build_inputs(clean, noise, torch.tensor([0.5]), torch.tensor([1]), 1e-4, torch.bfloat16)
    opt = torch.optim.AdamW(params, lr=1e-2)
    losses = []
    for _ in range(15):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = per_sample_loss(predict_velocity(model, inputs, text), inputs).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


def test_adapter_the_base_cannot_take_is_refused():
    from cosmos_ros.training.adapters import attach_adapter
    from diffusers import CosmosTransformer3DModel

    model = CosmosTransformer3DModel(
        in_channels=17,
        out_channels=16,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=1,
        text_embed_dim=32,
        adaln_lora_dim=8,
    )
    with pytest.raises(ValueError, match="cannot take"):
        attach_adapter(model, "lora", 4, 4, ["no_such_layer"])


@pytest.mark.parametrize("adapter_type", ["lora", "dora"])
def test_lean_forward_computes_what_peft_computes(adapter_type):
    """Same outputs and gradients as peft's own forward (fp32), and the same state-dict keys."""
    import copy

    from cosmos_ros.training.adapters import attach_adapter, stock_lora_state_dict
    from cosmos_ros.training.lean_forward import install_lean_forward

    targets = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]
    peft_model = _small_transformer()
    attach_adapter(peft_model, adapter_type, 4, 8, targets)
    with torch.no_grad():  # move off the identity start: B = 0 and m = ||W|| would hide mistakes
        g = torch.Generator().manual_seed(3)
        for name, p in peft_model.named_parameters():
            if p.requires_grad:
                scale = 0.3 if "magnitude" not in name else 0.05
                p.add_(
                    scale * torch.randn(p.shape, generator=g) * (p.abs().mean() if "magnitude" in name else 1)
                )
    lean_model = copy.deepcopy(peft_model)
    adapted = [n for n, m in lean_model.named_modules() if hasattr(m, "lora_A")]
    assert install_lean_forward(lean_model) == len(adapted) == 20  # 2 blocks x (4 + 4 attention + 2 ff)

    clean = torch.randn(1, 16, 3, 4, 4)
    inputs = build_inputs(
        clean, torch.randn_like(clean), torch.tensor([0.6]), torch.tensor([1]), 1e-4, torch.float32
    )
    text = torch.randn(1, 8, 32)
    losses, grads = [], []
    for model in (peft_model, lean_model):
        loss = per_sample_loss(predict_velocity(model, inputs, text), inputs).mean()
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    assert grads[0].keys() == grads[1].keys() and any("magnitude" in n for n in grads[0]) == (
        adapter_type == "dora"
    )
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)
    assert stock_lora_state_dict(lean_model).keys() == stock_lora_state_dict(peft_model).keys()

    # disabling the adapter gives the base output, as peft's layers do
    lean_model.disable_adapters()
    peft_model.disable_adapters()
    with torch.no_grad():
        torch.testing.assert_close(
            predict_velocity(lean_model, inputs, text), predict_velocity(peft_model, inputs, text)
        )


def test_lean_forward_refuses_layers_it_does_not_cover():
    from cosmos_ros.training.lean_forward import install_lean_forward
    from peft import LoraConfig

    model = _small_transformer()
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q"], lora_dropout=0.1))
    with pytest.raises(ValueError, match="lora_dropout"):
        install_lean_forward(model)
