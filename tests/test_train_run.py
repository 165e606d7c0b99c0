"""End-to-end training on the tiny model and a synthetic dataset (CPU, fixed seed).

Acceptance checks of issue 9: the loss falls (LoRA and DoRA), an interrupted + resumed run
reproduces the uninterrupted one exactly, the adapter loads into a stock
``Cosmos2_5_PredictBasePipeline`` and changes its output, a two-process gloo run equals one
process with the doubled batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cosmos_ros.training.config import load_config
from cosmos_ros.training.loop import train
from train_helpers import make_plain_dataset, one_thread, tiny_overrides

_threads = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from cosmos_ros.model.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("train")
    base = make_tiny_model(root / "base", seed=0)
    data = make_plain_dataset(root / "data", clips=3)
    return root, base, data


def _cfg(world, name, **extra):
    root, base, data = world
    return load_config("tiny_cpu", tiny_overrides(base, data, root / name, root / "cache", **extra))


@pytest.mark.parametrize("adapter_type", ["lora", "dora"])
def test_loss_falls(world, adapter_type):
    """A real learning check: the loss on fixed draws over the training clips drops by >= 20 % in 30 steps."""
    registry = world[0] / "registry"
    cfg = _cfg(
        world,
        f"learn_{adapter_type}",
        adapter_type=adapter_type,
        max_steps=30,
        validation_clips=1,
        registry=registry,
        adapter_name=f"tiny-{adapter_type}",
    )
    result = train(cfg)
    from cosmos_ros.registry import open_registry

    assert [r.name for r in open_registry(registry).list(name=f"tiny-{adapter_type}")] == [
        f"tiny-{adapter_type}"
    ]
    assert result.steps_done == 30 and len(result.losses) == 30
    assert result.probe_loss_end < 0.8 * result.probe_loss_start, (
        result.probe_loss_start,
        result.probe_loss_end,
    )
    meta = json.loads((result.adapter_dir / "adapter_metadata.json").read_text())
    assert meta["adapter_type"] == adapter_type and meta["base_fingerprint"].startswith("sha256:")
    assert meta["dataset_manifest_sha256"] and meta["training_config"]["max_steps"] == 30
    assert {"val_loss", "val_psnr", "val_ssim", "probe_loss_end"} <= set(meta["metrics"])
    assert list((result.adapter_dir.parent / "validation").glob("*/*.mp4"))
    assert list((result.adapter_dir.parent / "logs").iterdir())


def test_resume_reproduces_uninterrupted_run_exactly(world):
    straight = train(_cfg(world, "straight", max_steps=8, checkpoint_every=3, validation_clips=0))
    interrupted = _cfg(world, "resumed", max_steps=8, checkpoint_every=3, validation_clips=0)
    first = train(interrupted, stop_after_steps=5)
    assert first.adapter_dir is None and first.steps_done == 5
    ckpts = sorted(p.name for p in (Path(interrupted.output_dir) / "checkpoints").iterdir())
    assert ckpts == ["step_00000003", "step_00000005"]  # keep_checkpoints=2
    second = train(interrupted)
    assert second.losses == straight.losses  # bit-exact: same fp32 ops in the same order
    from safetensors.torch import load_file

    a = load_file(straight.adapter_dir / "pytorch_lora_weights.safetensors")
    b = load_file(second.adapter_dir / "pytorch_lora_weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_adapter_loads_into_stock_pipeline_and_changes_output(world):
    from diffusers import Cosmos2_5_PredictBasePipeline

    from cosmos_ros.model.safety import PassThroughSafetyChecker

    _, base, _ = world
    result = train(_cfg(world, "stock", max_steps=6, validation_clips=0, learning_rate=0.02))
    pipe = Cosmos2_5_PredictBasePipeline.from_pretrained(base, safety_checker=PassThroughSafetyChecker())
    pipe.set_progress_bar_config(disable=True)

    def run():
        return pipe(
            prompt="The robot arm picks up the red cube.",
            height=64,
            width=96,
            num_frames=9,
            num_inference_steps=2,
            guidance_scale=1.0,
            generator=torch.Generator().manual_seed(0),
            output_type="latent",
        ).frames

    before = run()
    pipe.load_lora_weights(str(result.adapter_dir))  # stock diffusers, our folder
    assert "default_0" in pipe.get_list_adapters()["transformer"] or pipe.get_list_adapters()["transformer"]
    after = run()
    assert (after - before).abs().max() > 1e-4


def _launch_two_processes(cfg_overrides: list[str], tmp: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "cosmos_ros.cli",
        "train",
        "--config",
        "tiny_cpu",
        "--no-progress",
    ]
    for item in cfg_overrides:
        cmd += ["--set", item]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp)


def test_two_process_gloo_equals_one_process_doubled_batch(world, tmp_path):
    root, base, data = world
    extra = {"max_steps": 4, "validation_clips": 0, "checkpoint_every": 100}
    single = train(_cfg(world, "single", batch_size=2, **extra))
    items = tiny_overrides(base, data, root / "ddp", root / "cache", batch_size=1, **extra)
    proc = _launch_two_processes(items, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from safetensors.torch import load_file

    a = load_file(single.adapter_dir / "pytorch_lora_weights.safetensors")
    b = load_file(root / "ddp" / "adapter" / "pytorch_lora_weights.safetensors")
    assert a.keys() == b.keys()
    for key in a:  # same samples, same draws; only float summation order differs
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
    meta = json.loads((root / "ddp" / "adapter" / "adapter_metadata.json").read_text())
    assert meta["metrics"]["world_size"] == 2
    ddp_losses = json.loads((root / "ddp" / "checkpoints" / "step_00000004" / "state.json").read_text())[
        "losses"
    ]
    assert ddp_losses == pytest.approx(single.losses, rel=1e-4)


def test_precompute_cache_is_reused_and_keyed_by_preprocessing(world):
    from cosmos_ros.training.data import load_clips
    from cosmos_ros.training.precompute import PreprocessParams, precompute
    from diffusers import CosmosTransformer3DModel

    from cosmos_ros.model.fingerprint import model_fingerprint

    root, base, data = world
    split = load_clips(data, 9, 1)
    proj = CosmosTransformer3DModel.from_pretrained(base / "transformer").crossattn_proj
    params = PreprocessParams(model_fingerprint(base), 64, 96, 9, "crop", "", 32, "float32")
    kwargs = dict(projection=proj, device=torch.device("cpu"), dtype=torch.float32)
    first = precompute(base, params, root / "cache_keyed", split.train, split.val, **kwargs)
    again = precompute(base, params, root / "cache_keyed", split.train, split.val, **kwargs)
    assert first.encoded == 3 and again.encoded == 0 and again.reused == 3
    shorter = precompute(
        base,
        PreprocessParams(**{**params.__dict__, "num_frames": 5}),
        root / "cache_keyed",
        split.train,
        split.val,
        **kwargs,
    )
    assert shorter.folder != first.folder and shorter.encoded == 3
    other_base = PreprocessParams(**{**params.__dict__, "base_fingerprint": "sha256:other"})
    assert other_base.key() != params.key()
    from safetensors.torch import load_file

    assert load_file(shorter.train_files[0])["latents"].shape[1] == 2  # 5 frames -> 2 latent frames
