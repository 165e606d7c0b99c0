"""The finished adapter: a folder stock diffusers loads, plus cosmos_ros metadata.

``pytorch_lora_weights.safetensors`` is written by diffusers' own
``Cosmos2_5_PredictBasePipeline.save_lora_weights`` (keys prefixed ``transformer.``, the peft
config stored in the safetensors metadata so alpha and DoRA survive), so
``load_lora_weights(folder)`` on a stock pipeline takes it unchanged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from cosmos_ros.atomic import atomic_path
from cosmos_ros.model.adapter_folder import (
    WEIGHTS_NAME,
    AdapterMetadata,
    sort_safetensors_metadata,
    write_adapter_metadata,
)

from .adapters import adapter_config_dict, stock_lora_state_dict

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
    transformer: torch.nn.Module, folder: str | os.PathLike[str], metadata: AdapterMetadata
) -> Path:
    """Write weights + ``adapter_metadata.json`` into ``folder`` atomically (replacing it)."""
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
    return Path(folder)


def register_adapter(registry_path: str, folder: Path, name: str, note: str | None = None) -> Any:
    """Register the adapter folder in the registry (new version of ``name``)."""
    from cosmos_ros.registry import open_registry

    record = open_registry(registry_path).register(folder, name, created_by="cosmos-ros train", note=note)
    log.info("registered adapter %s in %s", getattr(record, "ref", name), registry_path)
    return record
