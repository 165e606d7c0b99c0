"""The finished adapter: a folder stock diffusers loads, plus cosmos_ros metadata, and its registration.

``pytorch_lora_weights.safetensors`` is written by diffusers' own
``Cosmos2_5_PredictBasePipeline.save_lora_weights`` (keys prefixed ``transformer.``, the peft
config stored in the safetensors metadata so alpha and DoRA survive), so
``load_lora_weights(folder)`` on a stock pipeline takes it unchanged.

A run is finished when its adapter folder is written and, where the config names a registry,
registered there: a run stopped between the two registers on its next start.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cosmos_ros.atomic import atomic_path
from cosmos_ros.model.adapter_folder import (
    WEIGHTS_NAME,
    AdapterMetadata,
    read_adapter_metadata,
    sort_safetensors_metadata,
    write_adapter_metadata,
)

from .adapters import adapter_config_dict, stock_lora_state_dict
from .checkpoints import RESUME_MUST_MATCH, same_value
from .model_card import CARD_NAME, model_card

if TYPE_CHECKING:
    from .config import TrainConfig

log = logging.getLogger(__name__)


def code_version() -> str:
    """cosmos_ros version plus the git commit when run from a checkout."""
    import subprocess

    from cosmos_ros import __version__

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def write_adapter_folder(
    transformer: torch.nn.Module,
    folder: str | os.PathLike[str],
    metadata: AdapterMetadata,
    card: str | None = None,
) -> Path:
    """Write weights + ``adapter_metadata.json`` (+ the model card ``README.md`` when given, default
    none) into ``folder`` atomically (replacing it), so a folder never lacks its card."""
    from diffusers import Cosmos2_5_PredictBasePipeline

    state = stock_lora_state_dict(transformer)
    with atomic_path(folder) as tmp:
        Cosmos2_5_PredictBasePipeline.save_lora_weights(
            tmp,
            transformer_lora_layers=state,
            weight_name=WEIGHTS_NAME,
            transformer_lora_adapter_metadata=adapter_config_dict(transformer),
        )
        sort_safetensors_metadata(tmp / WEIGHTS_NAME)  # the same adapter, the same bytes
        write_adapter_metadata(tmp, metadata)
        if card is not None:
            (tmp / CARD_NAME).write_text(card, encoding="utf-8")
    return Path(folder)


def register_adapter(registry_path: str, folder: Path, name: str, note: str | None = None) -> Any:
    """Register the adapter folder in the registry (new version of ``name``)."""
    from cosmos_ros.registry import open_registry

    with open_registry(registry_path) as registry:
        record = registry.register(folder, name, created_by="cosmos-ros train", note=note)
    log.info("registered adapter %s in %s", record.adapter_id, registry_path)
    return record


def ensure_registered(registry_path: str, folder: Path, name: str) -> tuple[str, bool]:
    """The version of ``name`` that holds this adapter's weights, registering one where none does.

    Returns (adapter id, whether this call registered it). Why: registering is the last step of a
    run; a run stopped after writing its adapter folder but before registering was reported as
    complete on its next start and never registered.
    """
    from cosmos_ros.registry import open_registry
    from cosmos_ros.registry.artifacts import sha256_file

    digest, _ = sha256_file(folder / WEIGHTS_NAME)
    with open_registry(registry_path) as registry:
        held = [r for r in registry.list(name=name) if r.artifact_sha256 == digest]
    if held:
        return held[-1].adapter_id, False
    return register_adapter(registry_path, folder, name).adapter_id, True


def finished_adapter(
    output_dir: Path, info: dict[str, Any], identity: dict[str, Any]
) -> tuple[Path, dict[str, Any]] | None:
    """(folder, metrics) of the adapter of a run trained to its checkpoint's step, else None.

    The adapter must say it was trained for the checkpoint's steps on the same base, dataset and
    settings; anything else (missing, unreadable, from another run) means it is written again.
    """
    folder = output_dir / "adapter"
    try:
        meta = read_adapter_metadata(folder)
    except (ValueError, OSError):
        return None
    if meta is None or not (folder / WEIGHTS_NAME).is_file():
        return None
    metrics = dict(meta.metrics)
    if (
        metrics.get("steps") != int(info["step"])
        or meta.base_fingerprint != identity["base_fingerprint"]
        or meta.dataset_manifest_sha256 != identity["dataset_manifest_sha256"]
        or not all(same_value(meta.training_config.get(name), identity[name]) for name in RESUME_MUST_MATCH)
    ):
        return None
    return folder, metrics


def write_output(
    cfg: TrainConfig,
    transformer: torch.nn.Module,
    fingerprint: str,
    split: Any,
    metrics: dict[str, Any],
    started_at: str,
    output_dir: Path,
) -> Path:
    """The run's adapter folder with its metadata and model card (registering is
    :func:`ensure_registered`); the card names the adapter as the registry will (adapter_name, else
    the output folder's name)."""
    meta = AdapterMetadata(
        adapter_type=cfg.adapter_type,  # type: ignore[arg-type]
        rank=cfg.rank,
        alpha=cfg.alpha,
        target_modules=list(cfg.target_modules),
        base_fingerprint=fingerprint,
        dataset_manifest_sha256=split.manifest_sha256,
        dataset_path=str(split.root),
        training_config=cfg.to_dict(),
        code_version=code_version(),
        metrics=metrics,  # already plain, strict-JSON values (train() made them so)
        started_at=started_at,
        finished_at=datetime.now(timezone.utc).isoformat(),
    )
    card = model_card(meta, name=cfg.adapter_name or output_dir.name)
    return write_adapter_folder(transformer, output_dir / "adapter", meta, card)
