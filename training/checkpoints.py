"""Resumable checkpoints: adapter, optimizer, scheduler, RNG states and data position.

A checkpoint is a folder ``<output_dir>/checkpoints/step_<NNNNNNNN>/`` written atomically (a
temporary folder renamed into place), so a crash mid-write never leaves a checkpoint that looks
complete. ``adapter.safetensors`` holds the trainable tensors by parameter name (fp32, exact);
``training_state.pt`` holds optimizer, scheduler and RNG states and is loaded with
``weights_only=True`` (no code runs on load); ``state.json`` holds the step and data position,
the losses and step times so far, and the run's identity (:func:`run_identity`): what a resumed
run must share with the checkpoint for the two parts to be one run. Only the last K checkpoints
are kept.

``state.json`` also records the sha256 of the two other files and of its own other fields
(``checksums``); a resume verifies them first, so a damaged checkpoint is refused by name instead
of silently continuing as a different run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import pickle
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cosmos_ros.atomic import atomic_path

if TYPE_CHECKING:
    from .config import TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "step_"
ADAPTER_FILE = "adapter.safetensors"
STATE_FILE = "training_state.pt"
INFO_FILE = "state.json"
CHECKSUMS = "checksums"

#: Config fields a resumed run must share with its checkpoint: they shape the adapter (type, rank,
#: alpha, targets), the data and its order (seed, preprocessing), the objective, or the optimizer
#: (whose hyper-parameters the restored optimizer state would silently override).
RESUME_MUST_MATCH: tuple[str, ...] = (
    "adapter_type",
    "rank",
    "alpha",
    "target_modules",
    "seed",
    "height",
    "width",
    "num_frames",
    "frame_fit",
    "prompt_prefix",
    "max_sequence_length",
    "mixed_precision",
    "cond_frame_probs",
    "cond_timestep",
    "prompt_dropout",
    "logit_normal_mean",
    "logit_normal_std",
    "sigma_shift",
    "learning_rate",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_eps",
    "lr_schedule",
    "warmup_steps",
    "max_grad_norm",
)
#: Config fields a resume may change: run length, intervals, logging, speed/memory flags, where things
#: live (base_model and dataset are compared by fingerprint and manifest instead of by path), and
#: batch_size/gradient_accumulation as long as the global batch stays the same.
RESUME_MAY_CHANGE: tuple[str, ...] = (
    "base_model",
    "dataset",
    "output_dir",
    "cache_dir",
    "registry",
    "adapter_name",
    "max_steps",
    "epochs",
    "batch_size",
    "gradient_accumulation",
    "fps",
    "validation_clips",
    "device",
    "tf32",
    "gradient_checkpointing",
    "checkpoint_skip_blocks",
    "compile_blocks",
    "fused_optimizer",
    "lean_adapter_forward",
    "attention_backend",
    "checkpoint_every",
    "keep_checkpoints",
    "resume",
    "validation_every",
    "validation_steps",
    "log_every",
    "report_to",
)
#: What the identity's derived entries stand for, for the error message.
_DERIVED = {
    "base_fingerprint": "of base_model",
    "dataset_manifest_sha256": "of dataset",
    "train_clips": "from dataset and validation_clips",
    "global_batch": "batch_size x processes x gradient_accumulation",
}


def run_identity(
    cfg: TrainConfig,
    *,
    base_fingerprint: str,
    dataset_manifest_sha256: str,
    train_clip_ids: list[str],
    global_batch: int,
) -> dict[str, Any]:
    """What a checkpoint records and a resume compares: one run's model, data, order and optimizer."""
    ids = hashlib.sha256("\n".join(train_clip_ids).encode("utf-8")).hexdigest()
    identity: dict[str, Any] = {
        "base_fingerprint": base_fingerprint,
        "dataset_manifest_sha256": dataset_manifest_sha256,
        "train_clips": f"{len(train_clip_ids)} clips, sha256:{ids}",
        "global_batch": global_batch,
    }
    for name in RESUME_MUST_MATCH:
        value = getattr(cfg, name)
        identity[name] = list(value) if isinstance(value, (list, tuple)) else value
    return json.loads(json.dumps(identity))  # the values exactly as state.json gives them back


def check_resume_matches(
    path: Path, info: dict[str, Any], current: dict[str, Any], output_dir: str | Path
) -> None:
    """Refuse to resume ``path`` when its recorded identity differs from this run's, naming each field.

    Checkpoints written before identities were recorded hold only ``base_fingerprint``; that is
    compared, and the adapter tensors' names and shapes are checked when they are loaded.
    """
    recorded = info.get("run")
    if not isinstance(recorded, dict):
        recorded = {"base_fingerprint": info["base_fingerprint"]} if "base_fingerprint" in info else {}
    differ = [name for name in current if name in recorded and not same_value(recorded[name], current[name])]
    if not differ:
        return
    lines = []
    for name in differ:
        label = f"{name} ({_DERIVED[name]})" if name in _DERIVED else name
        lines.append(f"  {label}: checkpoint {recorded[name]!r}, now {current[name]!r}")
    raise ValueError(
        f"cannot resume from checkpoint {path}: this run's settings differ from the run that wrote it, "
        "and continuing would mix two different trainings:\n" + "\n".join(lines) + "\n"
        "To continue that run, set these back to the checkpoint's values. To train with the new "
        "settings, start a new run in another folder (--set output_dir=NEW_FOLDER), or delete "
        f"{checkpoint_dir(output_dir)} to start over in this one (resume=none is refused while "
        "it holds checkpoints)."
    )


def same_value(a: Any, b: Any) -> bool:
    """Equal, with ints and floats compared as numbers (YAML ``alpha: 8`` is ``8.0``)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b)
    return bool(a == b)


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None: strict JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


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


def checkpoint_path(output_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(output_dir) / f"{CHECKPOINT_PREFIX}{step:08d}"


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

    final = checkpoint_path(output_dir, step)
    with atomic_path(final) as tmp:
        tmp.mkdir()
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in adapter_state.items()}, str(tmp / ADAPTER_FILE)
        )
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
            tmp / STATE_FILE,
        )
        body = json_safe({"step": step, **info})
        body[CHECKSUMS] = {name: _sha256(tmp / name) for name in (ADAPTER_FILE, STATE_FILE)}
        body[CHECKSUMS][INFO_FILE] = _info_digest(body)
        text = json.dumps(body, indent=2, sort_keys=True, allow_nan=False)
        (tmp / INFO_FILE).write_text(text + "\n")
    for old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def find_resume_point(output_dir: str | Path, resume: str) -> Path | None:
    """``auto``: the latest checkpoint (or None); ``none``: None; else the given folder.

    ``none`` is refused while ``output_dir`` holds checkpoints: the new run's would sit beside
    the old run's, pruning keeps the highest steps (it could delete the new run's own), and a later
    ``auto`` would resume whichever run got further.
    """
    if resume == "none":
        earlier = list_checkpoints(output_dir)
        if earlier:
            folder = checkpoint_dir(output_dir)
            raise ValueError(
                f"resume=none, but {folder} holds {len(earlier)} checkpoint(s) of an earlier run "
                f"(latest {earlier[-1].name}): this run's checkpoints would be mixed with them. "
                "Continue that run (resume=auto), start in another folder (--set output_dir=NEW_FOLDER), "
                f"or delete {folder} to start over in this one."
            )
        return None
    if resume == "auto":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / INFO_FILE).is_file():
        raise FileNotFoundError(f"resume={resume}: not a checkpoint folder (no {INFO_FILE})")
    return path


def _sha256(path: Path) -> str:
    from cosmos_ros.registry.artifacts import sha256_file

    return sha256_file(path)[0]


def _info_digest(info: dict[str, Any]) -> str:
    """sha256 of state.json's fields other than the checksums, in one canonical JSON form."""
    rest = {k: v for k, v in info.items() if k != CHECKSUMS}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def verify_checkpoint(path: str | Path, info: dict[str, Any]) -> None:
    """Refuse a checkpoint whose files differ from the sha256 its state.json records, naming them.

    Checkpoints written before checksums were recorded are resumed unverified, with a warning.
    """
    path = Path(path)
    sums = info.get(CHECKSUMS)
    if sums is None:
        log.warning(
            "checkpoint %s records no checksums (written by an older version): resumed unverified", path
        )
        return
    if not isinstance(sums, dict):
        sums = {}
    damaged = [] if sums.get(INFO_FILE) == _info_digest(info) else [INFO_FILE]
    for name in (ADAPTER_FILE, STATE_FILE):
        if not (path / name).is_file():
            damaged.append(f"{name} (missing)")
        elif _sha256(path / name) != sums.get(name):
            damaged.append(name)
    if damaged:
        earlier = [p for p in list_checkpoints(path.parent.parent) if p.name < path.name]
        way_out = (
            f"resume from the one before it (--set resume={earlier[-1]}) or delete {path}"
            if earlier
            else f"delete {path} and train from the start"
        )
        raise ValueError(
            f"checkpoint {path} is damaged: {', '.join(damaged)} differ(s) from the sha256 its {INFO_FILE} "
            f"records (a changed or truncated file); {way_out}"
        )


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The checkpoint's ``state.json`` (step, data position, losses, run identity)."""
    where = Path(path) / INFO_FILE
    try:
        info = json.loads(where.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: not valid JSON ({exc}); resume from another checkpoint") from exc
    if not isinstance(info, dict) or not isinstance(info.get("step"), int):
        raise ValueError(f"{where}: no integer 'step'; resume from another checkpoint")
    return info


def load_checkpoint(path: str | Path, optimizer: torch.optim.Optimizer, scheduler: Any) -> Checkpoint:
    """Restore optimizer, scheduler and RNG states; return the adapter tensors' holder and info.

    A file that is not a training state (truncated, damaged, a pickle of anything else) is a
    ValueError naming it; ``weights_only=True`` means no code in it runs.
    """
    path = Path(path)
    info = read_checkpoint_info(path)
    where = path / STATE_FILE
    try:
        state = torch.load(where, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{where}: holds objects other than tensors and plain values (refused unread: loading it could "
            "run code); resume from another checkpoint"
        ) from exc
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise ValueError(f"{where}: {_unreadable(exc)}; resume from another checkpoint") from exc
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        raise ValueError(
            f"{where}: not the optimizer, scheduler and RNG states of this run ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}); resume from another checkpoint"
        ) from exc
    return Checkpoint(path=path, step=int(info["step"]), info=info)


def _unreadable(exc: BaseException) -> str:
    detail = " ".join(str(exc).split())[:200] or type(exc).__name__
    return f"not a readable training state (truncated or damaged: {detail})"


def load_adapter_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's adapter tensors; ValueError naming the file where it is not readable safetensors."""
    from safetensors.torch import load_file

    where = Path(path) / ADAPTER_FILE
    try:
        return load_file(str(where))
    except Exception as exc:  # SafetensorError (truncated, damaged, not safetensors) or OSError
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ValueError(
            f"{where}: not a readable safetensors file (truncated, damaged or not safetensors: {detail}); "
            "resume from another checkpoint"
        ) from exc


def recorded_losses(info: dict[str, Any]) -> list[float]:
    """A checkpoint's losses, as floats (state.json stores a non-finite loss as null)."""
    return [math.nan if v is None else float(v) for v in info.get("losses", [])]
