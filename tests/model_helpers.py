"""Shared fixtures for the model runtime tests: one tiny model per session, one runtime per module.

Use from a test file with ``from model_helpers import tiny_model_dir, runtime, frame`` (pytest
picks fixtures up from the test module's namespace).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "The robot arm is performing a task. The robot arm picks up the red cube."


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cosmos_ros.model.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def runtime(tiny_model_dir: Path):
    from cosmos_ros.model.runtime import CosmosRuntime

    rt = CosmosRuntime.load(tiny_model_dir, device="cpu", dtype="float32", safety_checker="off")
    yield rt
    rt.close()


def camera_frame(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    """A synthetic camera image (smooth gradients + a square), uint8 RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    y0, x0 = rng.integers(0, height // 2), rng.integers(0, width // 2)
    img[y0 : y0 + height // 4, x0 : x0 + width // 4] = (220, 30, 30)
    return img


@pytest.fixture
def frame() -> np.ndarray:
    return camera_frame()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A 40x60 camera PNG, what ``predict --image`` reads."""
    import cv2

    path = tmp_path / "cam.png"
    cv2.imwrite(str(path), camera_frame(40, 60))
    return path


def predict_args(model: Path, image: Path, out: Path, *extra: str) -> list[str]:
    """A tiny, fast ``cosmos-ros predict`` command line (5 frames, 1 step, 32x48) plus ``extra``."""
    return ["predict", "--model", str(model), "--image", str(image), "--prompt", "the robot moves",
            "-o", str(out), "--num-frames", "5", "--steps", "1", "--height", "32", "--width", "48",
            "--safety-checker", "off", *extra]  # fmt: skip


def save_stock_lora(pipe, folder: Path, *, rank: int = 4, use_dora: bool = False, seed: int = 1,
                    targets: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")) -> Path:  # fmt: skip
    """Make an adapter the way stock diffusers/peft training scripts do, with non-zero B weights.

    Attaches a peft LoraConfig to a *copy* of the transformer, randomises lora_B (a freshly
    initialised LoRA is a no-op), and writes it with ``save_lora_weights``.
    """
    import copy

    import torch
    from diffusers import Cosmos2_5_PredictBasePipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer = copy.deepcopy(pipe.transformer)
    if getattr(transformer, "peft_config", None):
        transformer.delete_adapters(list(transformer.peft_config))
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=list(targets), use_dora=use_dora,
                        init_lora_weights=True)  # fmt: skip
    transformer.add_adapter(config, adapter_name="default")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in transformer.named_parameters():
            if "lora_B" in name or "lora_A" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    layers = get_peft_model_state_dict(transformer, adapter_name="default")
    Cosmos2_5_PredictBasePipeline.save_lora_weights(
        folder, transformer_lora_layers=layers, transformer_lora_adapter_metadata=config.to_dict()
    )
    return folder


def recording_safety_checker(verdict: str = "pass"):
    """A stand-in guardrail that records every video it is asked about.

    A diffusers ``ModelMixin`` like the real one (the pipeline takes its device from its
    components). ``verdict``: ``pass`` returns the frames, ``blank`` returns black frames,
    ``refuse`` returns None (what cosmos_guardrail does for an unsafe video).
    """
    import torch
    from diffusers import ConfigMixin, ModelMixin

    class _Recording(ModelMixin, ConfigMixin):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("_device_anchor", torch.zeros(1), persistent=False)
            self.verdict = verdict
            self.prompts: list[str] = []
            self.videos: list[np.ndarray] = []

        def check_text_safety(self, prompt: str) -> bool:
            self.prompts.append(prompt)
            return True

        def check_video_safety(self, frames: np.ndarray) -> np.ndarray | None:
            self.videos.append(np.array(frames, copy=True))
            if self.verdict == "refuse":
                return None
            return np.zeros_like(frames) if self.verdict == "blank" else frames

    _Recording.__name__ = _Recording.__qualname__ = "RecordingSafetyChecker"
    return _Recording()


@contextmanager
def installed_safety_checker(rt, checker) -> Iterator[Any]:
    """Put ``checker`` into ``rt``'s pipeline for the block, then restore the one it had."""
    original = rt.pipe.safety_checker
    rt.pipe.register_modules(safety_checker=checker)
    try:
        yield checker
    finally:
        rt.pipe.register_modules(safety_checker=original)
