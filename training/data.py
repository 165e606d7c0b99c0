"""Training data: which clips train and validate, and a deterministic order over cached latents.

Datasets are read only through ``cosmos_ros.bag_tools.dataset_format.load_dataset`` (bag tools'
folders and the recipe's plain ``videos/`` + ``metas/`` layout). The sample order is a pure
function of (seed, optimizer step, position in the global batch), so a resumed run or a
data-parallel run visits exactly the samples an uninterrupted single-process run visits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class ClipSource:
    """One clip to train or validate on."""

    clip_id: str
    video: Path
    prompt: str
    frame_count: int


@dataclass
class DataSplit:
    train: list[ClipSource]
    val: list[ClipSource]
    manifest_sha256: str
    root: Path


def load_clips(dataset_dir: str | Path, num_frames: int, validation_clips: int) -> DataSplit:
    """Load the dataset, check every clip is long enough, and pick the validation clips.

    The dataset's own ``val`` split is used when it has one; otherwise ``validation_clips``
    clips are held out by a stable hash of their ids (never the same as a seed-dependent draw,
    so changing the seed does not leak validation clips into training).
    """
    from cosmos_ros.bag_tools.dataset_format import load_dataset

    dataset = load_dataset(dataset_dir)
    if len(dataset) == 0:
        raise ValueError(f"dataset {dataset_dir} holds no clips")
    short = [c.clip_id for c in dataset if 0 < c.frame_count < num_frames]
    if short:
        raise ValueError(
            f"dataset {dataset_dir}: clip(s) {short[:5]} have fewer than num_frames={num_frames} frames; "
            "lower num_frames (4k+1) or rebuild the dataset with longer clips"
        )

    def source(c: Any) -> ClipSource:
        return ClipSource(c.clip_id, dataset.video_path(c), c.prompt, c.frame_count)

    train = [source(c) for c in dataset.split("train")]
    val = [source(c) for c in dataset.split("val")]
    if not val and validation_clips > 0:
        if len(train) <= validation_clips:
            raise ValueError(
                f"dataset {dataset_dir} has {len(train)} clip(s) and no val split; cannot hold out "
                f"validation_clips={validation_clips} and still train (set validation_clips=0)"
            )
        ranked = sorted(train, key=lambda c: hashlib.sha256(c.clip_id.encode()).hexdigest())
        held = {c.clip_id for c in ranked[:validation_clips]}
        val = [c for c in train if c.clip_id in held]
        train = [c for c in train if c.clip_id not in held]
    if not train:
        raise ValueError(f"dataset {dataset_dir} has no training clips")
    return DataSplit(train=train, val=val, manifest_sha256=dataset.manifest_sha256, root=Path(dataset_dir))


class SampleOrder:
    """Which clip is sample ``i`` of the global batch of optimizer step ``step``.

    Each epoch is a seeded permutation; an epoch has ``len(clips) // global_batch`` steps (the
    remainder is dropped, as with ``drop_last``).
    """

    def __init__(self, num_clips: int, global_batch: int, seed: int) -> None:
        if num_clips < global_batch:
            raise ValueError(
                f"{num_clips} training clip(s) cannot fill a global batch of {global_batch} "
                "(batch_size x processes x gradient_accumulation); lower batch_size or gradient_accumulation"
            )
        self.num_clips = num_clips
        self.global_batch = global_batch
        self.seed = seed
        self.steps_per_epoch = num_clips // global_batch
        self._perm_epoch = -1
        self._perm = torch.arange(num_clips)

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._perm = torch.randperm(self.num_clips, generator=g)
            self._perm_epoch = epoch
        return self._perm

    def clip_index(self, step: int, position: int) -> int:
        """Clip for global-batch ``position`` (0 .. global_batch-1) of 0-based optimizer ``step``."""
        epoch, within = divmod(step, self.steps_per_epoch)
        return int(self.permutation(epoch)[within * self.global_batch + position])

    def sample_key(self, step: int, position: int) -> int:
        """A unique key per drawn sample: seeds its noise, sigma and dropout."""
        return step * self.global_batch + position


class CachedLatents:
    """Latents and projected text embeddings of clips, read from the precompute cache."""

    def __init__(self, files: list[Path], empty_text_file: Path, keep_in_memory: bool = True) -> None:
        from safetensors.torch import load_file

        self.files = files
        self.keep = keep_in_memory
        self._memory: dict[int, dict[str, torch.Tensor]] = {}
        self.empty_text = load_file(empty_text_file)["text"]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        if index in self._memory:
            return self._memory[index]
        item = load_file(self.files[index])
        if self.keep:
            self._memory[index] = item
        return item
