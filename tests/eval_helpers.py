"""Synthetic scenes with known geometry for the evaluation tests.

A "3D-ish" scene: textured fronto-parallel planes at different depths seen by a pinhole camera.
For such a plane at depth Z and a camera translated by (tx, ty, tz), the image motion is exactly
the affine map u' = s (u - c) + c - f t / (Z - tz) with s = Z / (Z - tz), so each layer is rendered
with cv2.warpAffine and the layers are composited back to front. Different depths give parallax,
so the views obey a proper (non-homography) epipolar geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Multi-scale blob texture (SIFT finds many stable keypoints on it), uint8 RGB."""
    out = np.zeros((height, width, 3), np.float32)
    for sigma, weight in ((1.5, 0.5), (4.0, 1.0), (10.0, 1.0)):
        noise = rng.standard_normal((height, width, 3)).astype(np.float32)
        blurred = cv2.GaussianBlur(noise, (0, 0), sigma)
        out += weight * blurred / (blurred.std() + 1e-6)
    out = (out - out.min()) / (out.max() - out.min())
    return (out * 255).astype(np.uint8)


@dataclass
class Layer:
    depth: float
    image: np.ndarray  # uint8 RGB, same size as the output
    mask: np.ndarray  # float32 0/1


@dataclass
class LayeredScene:
    height: int
    width: int
    focal: float
    layers: list[Layer]

    def render(self, tx: float, ty: float = 0.0, tz: float = 0.0) -> np.ndarray:
        """Image seen by a camera translated by (tx, ty, tz) from the reference position."""
        cx, cy = (self.width - 1) / 2, (self.height - 1) / 2
        canvas = np.zeros((self.height, self.width, 3), np.float32)
        for layer in sorted(self.layers, key=lambda la: -la.depth):
            s = layer.depth / (layer.depth - tz)
            shift_x = cx - s * cx - self.focal * tx / (layer.depth - tz)
            shift_y = cy - s * cy - self.focal * ty / (layer.depth - tz)
            matrix = np.float32([[s, 0, shift_x], [0, s, shift_y]])
            size = (self.width, self.height)
            img = cv2.warpAffine(
                layer.image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
            mask = cv2.warpAffine(layer.mask, matrix, size, flags=cv2.INTER_LINEAR)[..., None]
            canvas = canvas * (1 - mask) + img.astype(np.float32) * mask
        return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def make_scene(seed: int = 0, height: int = 160, width: int = 224) -> LayeredScene:
    """A background plane and four textured boxes at depths 3-8."""
    rng = np.random.default_rng(seed)
    layers = [Layer(12.0, texture(rng, height, width), np.ones((height, width), np.float32))]
    for depth in (3.0, 4.5, 6.0, 8.0):
        mask = np.zeros((height, width), np.float32)
        h, w = int(rng.integers(height // 4, height // 2)), int(rng.integers(width // 5, width // 3))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        mask[y : y + h, x : x + w] = 1.0
        layers.append(Layer(depth, texture(rng, height, width), mask))
    return LayeredScene(height, width, focal=float(width), layers=layers)


def camera_sweep(
    scene: LayeredScene,
    frames: int,
    step: tuple[float, float, float] = (0.04, 0.01, 0.05),
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """A video of the camera moving by ``step`` per frame from ``offset``: uint8 [T, H, W, 3]."""
    return np.stack(
        [scene.render(*(o + t * s for o, s in zip(offset, step, strict=True))) for t in range(frames)]
    )


def random_warp(
    image: np.ndarray, rng: np.random.Generator, amplitude: float = 6.0, smooth: float = 12.0
) -> np.ndarray:
    """Warp ``image`` by an independent, smooth random displacement field (breaks epipolar geometry)."""
    h, w = image.shape[:2]
    field = rng.standard_normal((h, w, 2)).astype(np.float32)
    field = cv2.GaussianBlur(field, (0, 0), smooth)
    field *= amplitude / (np.abs(field).max() + 1e-6)
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        image, grid_x + field[..., 0], grid_y + field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


# --------------------------------------------------------------------------------------------------
# A tiny dataset and adapter for the end-to-end tests


def make_tiny_dataset(root, frames: int = 9, height: int = 64, width: int = 96, train_clips: int = 1):
    """Two test clips (two cameras of one clip group, a rigid rig) and one train clip, via dataset_format."""
    from pathlib import Path

    from cosmos_ros.bag_tools.dataset_format import (
        ClipRecord,
        DatasetInfo,
        meta_relpath,
        video_relpath,
        write_clip_files,
        write_dataset,
    )

    root = Path(root)
    scene = make_scene(seed=5, height=height, width=width)
    specs = [
        ("ep0_front", "test", "/cam/front", (0.0, 0.0, 0.0)),
        ("ep0_side", "test", "/cam/side", (0.3, 0.0, 0.0)),
    ]
    specs += [
        (f"ep{i + 1}_front", "train", "/cam/front", (0.1 * (i + 1), 0.05, 0.0)) for i in range(train_clips)
    ]
    records = []
    prompt = "The robot arm is performing a task. The robot arm picks up the red cube."
    for clip_id, split, topic, offset in specs:
        video = camera_sweep(scene, frames, step=(0.03, 0.0, 0.04), offset=offset)
        write_clip_files(root, clip_id, video, 16.0, prompt)
        records.append(
            ClipRecord(
                clip_id=clip_id, video=video_relpath(clip_id), meta=meta_relpath(clip_id), prompt=prompt,
                frame_count=frames, height=height, width=width, fps=16.0, split=split, topic=topic,
                clip_group=clip_id.split("_")[0], episode=clip_id.split("_")[0],
            )
        )  # fmt: skip
    return write_dataset(root, records, DatasetInfo(tool="tests/eval_helpers.py"))


def make_tiny_adapter(model_dir, folder, seed: int = 0, scale: float = 0.05):
    """A LoRA for the tiny model with random (non-zero) weights, written by the trainer's folder writer."""
    import torch
    from cosmos_ros.training.adapters import attach_adapter
    from cosmos_ros.training.output import write_adapter_folder
    from diffusers import CosmosTransformer3DModel

    from cosmos_ros.model.adapter_folder import AdapterMetadata
    from cosmos_ros.model.fingerprint import model_fingerprint

    transformer = CosmosTransformer3DModel.from_pretrained(model_dir, subfolder="transformer")
    params = attach_adapter(transformer, "lora", 4, 4.0, ["to_q", "to_v"])
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    meta = AdapterMetadata(
        adapter_type="lora", rank=4, alpha=4.0, target_modules=["to_q", "to_v"],
        base_fingerprint=model_fingerprint(model_dir),
    )  # fmt: skip
    return write_adapter_folder(transformer, folder, meta)


def make_eval_workspace(root) -> dict:
    """A tiny model, a tiny dataset and one adapter registered as ``tiny.pick`` below ``root``."""
    from cosmos_ros.model.tiny import make_tiny_model
    from cosmos_ros.registry import open_registry

    model = make_tiny_model(root / "model", seed=0)
    dataset = make_tiny_dataset(root / "dataset")
    adapter = make_tiny_adapter(model, root / "adapter", seed=1)
    registry = root / "registry"
    with open_registry(registry) as reg:
        ref = reg.register(adapter, "tiny.pick").adapter_id
    return {"root": root, "model": model, "dataset": dataset.root, "registry": registry, "ref": ref}
