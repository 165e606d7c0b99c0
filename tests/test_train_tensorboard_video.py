"""Validation videos reach TensorBoard as animated GIFs (issue 20).

torch's ``add_video`` needs ``moviepy.editor`` (gone in moviepy 2), so the trainer used to write no
playable video tag. These tests read the event file back and check the tag holds a GIF.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from train_helpers import make_plain_dataset, one_thread, tiny_overrides

_threads = pytest.fixture(autouse=True)(one_thread)


def _images(log_dir: Path) -> dict[str, list]:
    """All image summaries in ``log_dir``'s event files, by tag."""
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={IMAGES: 0})
    acc.Reload()
    return {tag: acc.Images(tag) for tag in acc.Tags()[IMAGES]}


def _gif(encoded: bytes) -> tuple[int, tuple[int, int]]:
    """(frame count, (width, height)) of a GIF."""
    assert encoded.startswith(b"GIF8")
    with Image.open(io.BytesIO(encoded)) as im:
        return im.n_frames, im.size


def test_add_gif_video_writes_playable_gif(tmp_path: Path) -> None:
    from cosmos_ros.training.tensorboard_video import add_gif_video
    from torch.utils.tensorboard import SummaryWriter

    frames = np.random.default_rng(0).integers(0, 256, (5, 12, 20, 3), dtype=np.uint8)
    with SummaryWriter(str(tmp_path)) as writer:
        add_gif_video(writer, "val/clip", frames, 7, fps=10.0)
    (event,) = _images(tmp_path)["val/clip"]
    assert (event.step, event.width, event.height) == (7, 20, 12)
    assert _gif(event.encoded_image_string) == (5, (20, 12))


def test_trainer_logs_validation_video_as_gif(tmp_path: Path) -> None:
    from cosmos_ros.training.config import load_config
    from cosmos_ros.training.loop import train

    from cosmos_ros.model.tiny import make_tiny_model

    base = make_tiny_model(tmp_path / "base", seed=0)
    data = make_plain_dataset(tmp_path / "data", clips=3)
    out = tmp_path / "run"
    extra = {"max_steps": 1, "validation_clips": 1, "checkpoint_every": 100}
    cfg = load_config("tiny_cpu", tiny_overrides(base, data, out, tmp_path / "cache", **extra))
    result = train(cfg)
    images = _images(result.adapter_dir.parent / "logs")
    assert len(images) == 1, sorted(images)
    (events,) = images.values()
    (event,) = events
    assert event.step == 1
    assert _gif(event.encoded_image_string) == (cfg.num_frames, (2 * cfg.width, cfg.height))
