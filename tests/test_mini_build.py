"""`cosmos-ros make-mini-model`'s stages at toy sizes: a loadable cosmos-mini folder, with records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cosmos_ros.bag_tools.world import make_episode, render_episode
from cosmos_ros.training.mini import build as mb


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[mb.MiniBuild, Path]:
    work = tmp_path_factory.mktemp("mini_work")
    b = mb.MiniBuild(work_dir=str(work), episodes_per_embodiment=1, held_out_episodes=1, clip_stride=31)
    b.vae.frame_steps, b.vae.clip_steps, b.vae.frame_batch, b.vae.clip_batch = 1, 1, 2, 1
    b.vae.eval_every = b.world.eval_every = 2  # only the final evaluation: CPU seconds
    b.world.steps, b.world.batch, b.world.warmup_steps = 2, 2, 1
    torch.set_num_threads(2)
    mb.stage_prompts(b)
    mb.stage_vae(b, torch.device("cpu"))
    mb.stage_transformer(b, torch.device("cpu"))
    out = mb.stage_assemble(b, work / "cosmos-mini")
    return b, out


def test_the_assembled_folder_is_a_cosmos_mini_model_that_predicts(built: tuple[mb.MiniBuild, Path]) -> None:
    from cosmos_ros.model.mini import MINI_PRESETS, is_mini_model
    from cosmos_ros.model.runtime import CosmosRuntime

    _, out = built
    assert is_mini_model(out)
    rt = CosmosRuntime.load(out, device="cpu", dtype="float32", safety_checker="off")
    try:
        episode = make_episode("grey_arm", 100_000, frames=48, fps=16.0)
        frame = render_episode(episode, 64, 96, 0, 1)
        result = rt.predict(frame, episode.prompt, steps=2)
    finally:
        rt.close()
    full = MINI_PRESETS["full"]
    assert result.frames.shape == (full["num_frames"], full["height"], full["width"], 3)


def test_the_model_records_its_build_curves_and_the_vae_shortcut_check(
    built: tuple[mb.MiniBuild, Path],
) -> None:
    b, out = built
    record = json.loads((out / "training_record.json").read_text())
    assert record["build"]["seed"] == b.seed and record["build"]["episodes_per_embodiment"] == 1
    assert record["pretrain_embodiments"] == mb.pretrain_embodiments()
    assert "ceiling_arm" not in record["pretrain_embodiments"]
    assert [p["step"] for p in record["vae"]["curve"]] == [2]
    assert np.isfinite(record["vae"]["later_latents_effect_db"])
    assert record["transformer"]["steps_done"] == 2 and record["transformer"]["curve"][-1]["val_loss_ema"] > 0
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: diffusers") and "not Cosmos quality" in card
    vae = json.loads((out / "vae" / "config.json").read_text())
    assert len(vae["latents_std"]) == 16 and all(s > 0 for s in vae["latents_std"])


def test_the_prompt_table_is_what_the_runtime_encodes(built: tuple[mb.MiniBuild, Path]) -> None:
    """Rows equal the runtime's own prompt embeddings (the stock pipeline path), empty prompt last."""
    from cosmos_ros.model.runtime import CosmosRuntime

    b, out = built
    table, prompts = mb.load_prompts(b)
    assert prompts[-1] == "" and len(prompts) == table.shape[0]
    rt = CosmosRuntime.load(out, device="cpu", dtype="float32", safety_checker="off")
    try:
        embeds = rt.encode_prompt(prompts[3])
    finally:
        rt.close()
    assert torch.allclose(embeds[0].float(), table[3], atol=1e-5)


def test_the_vae_starts_coding_each_latent_frame_from_its_own_frames() -> None:
    """Inflation init: decoded frames 1-4 follow latent frame 1 only, and a still clip codes alike.

    With PyTorch's default init they depend on latent frame 0 far more than on their own, and
    training settled on repeating the first frame (two GPU builds stalled at the still-frame PSNR).
    """
    from cosmos_ros.training.mini.vae_training import inflate_from_frames, to_input
    from diffusers import AutoencoderKLWan

    from cosmos_ros.model.mini import VAE_CONFIG

    torch.manual_seed(0)
    vae = inflate_from_frames(AutoencoderKLWan(**VAE_CONFIG)).eval()
    z = torch.randn(1, 16, 2, 8, 12, requires_grad=True)
    video = vae.decode(z).sample  # 1 + 4 frames
    for t in range(1, 5):
        (grad,) = torch.autograd.grad(video[:, :, t].pow(2).sum(), z, retain_graph=True)
        assert grad[:, :, 0].abs().max() == 0 and grad[:, :, 1].abs().mean() > 0.01, t
    frame = render_episode(make_episode("grey_arm", 100_000, frames=48, fps=16.0), 64, 96, 0, 1)
    with torch.no_grad():
        still_clip = to_input(np.repeat(frame[None], 5, axis=1), torch.device("cpu"))
        latents = vae.encode(still_clip).latent_dist.mode()
    torch.testing.assert_close(latents[:, :, 1], latents[:, :, 0], atol=1e-5, rtol=0)
