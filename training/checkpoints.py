"""Resumable checkpoints: adapter, optimizer, scheduler, RNG states and data position.

A checkpoint is a folder ``<output_dir>/checkpoints/step_<NNNNNNNN>/`` written atomically (a
temporary folder renamed into place), so a crash mid-write never leaves a checkpoint that looks
complete. ``adapter.safetensors`` holds the trainable tensors by parameter name (fp32, exact);
``training_state.pt`` holds optimizer, scheduler and RNG states and is loaded with
``weights_only=True`` (no code runs on load); ``state.json`` holds the step and data position.
Only the last K checkpoints are kept.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cosmos_ros.atomic import atomic_path

CHECKPOINT_PREFIX = "step_"
ADAPTER_FILE = "adapter.safetensors"
STATE_FILE = "training_state.pt"
INFO_FILE = "state.json"


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Checkpoint:
    path: Path
    step: int
    info: dict[str, Any]


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary ``.part`` folders are ignored)."""
    folder = checkpoint_dir(output_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)]
    found = [p for p in found if p.name[len(CHECKPOINT_PREFIX) :].isdigit() and (p / INFO_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def save_checkpoint(
    output_dir: str | Path,
    step: int,
    adapter_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    info: dict[str, Any],
    keep: int,
) -> Path:
    """Write the checkpoint for ``step`` atomically, then prune to the last ``keep``."""
    from safetensors.torch import save_file

    final = checkpoint_dir(output_dir) / f"{CHECKPOINT_PREFIX}{step:08d}"
    with atomic_path(final) as tmp:
        tmp.mkdir()
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in adapter_state.items()}, str(tmp / ADAPTER_FILE)
        )
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
            tmp / STATE_FILE,
        )
        (tmp / INFO_FILE).write_text(json.dumps({"step": step, **info}, indent=2, sort_keys=True) + "\n")
    for old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def find_resume_point(output_dir: str | Path, resume: str) -> Path | None:
    """``auto``: the latest checkpoint (or None); ``none``: None; else the given folder."""
    if resume == "none":
        return None
    if resume == "auto":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / INFO_FILE).is_file():
        raise FileNotFoundError(f"resume={resume}: not a checkpoint folder (no {INFO_FILE})")
    return path


def load_checkpoint(path: str | Path, optimizer: torch.optim.Optimizer, scheduler: Any) -> Checkpoint:
    """Restore optimizer, scheduler and RNG states; return the adapter tensors' holder and info."""
    path = Path(path)
    info = json.loads((path / INFO_FILE).read_text(encoding="utf-8"))
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return Checkpoint(path=path, step=int(info["step"]), info=info)


def load_adapter_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(path) / ADAPTER_FILE))
