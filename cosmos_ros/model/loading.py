"""Strictly offline loading of a local Cosmos Predict 2.5 diffusers directory.

Validation happens before any weights are read, so a wrong directory fails fast with an error
that names the file, component or class at fault. Components are loaded one by one (not through
``DiffusionPipeline.from_pretrained``) so the 7B text encoder can be left unloaded until a prompt
is missing from the embedding cache.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PIPELINE_CLASS = "Cosmos2_5_PredictBasePipeline"

#: component -> (library, accepted class names)
EXPECTED_COMPONENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "transformer": ("diffusers", ("CosmosTransformer3DModel",)),
    "vae": ("diffusers", ("AutoencoderKLWan",)),
    "text_encoder": ("transformers", ("Qwen2_5_VLForConditionalGeneration",)),
    "scheduler": ("diffusers", ("UniPCMultistepScheduler",)),
    "tokenizer": ("transformers", ()),  # any transformers tokenizer class
}
_WEIGHTED = ("transformer", "vae", "text_encoder")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")

DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}  # fmt: skip

_counter_lock = threading.Lock()
_base_loads = 0


def base_load_count() -> int:
    """How many times a base transformer has been read from disk in this process (for tests)."""
    return _base_loads


class ModelDirectoryError(ValueError):
    """The model directory is missing, incomplete, or holds a different model."""


@dataclass(frozen=True)
class ModelLayout:
    """What validation found: the directory and its model_index.json."""

    model_dir: Path
    index: dict[str, Any]


def torch_dtype(dtype: Any) -> Any:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    name = DTYPES.get(str(dtype).lower())
    if name is None:
        raise ValueError(f"dtype {dtype!r} is not supported; accepted: float32, bfloat16, float16")
    return getattr(torch, name)


def resolve_device_and_dtype(device: str | None = "auto", dtype: str | None = "auto") -> tuple[str, str]:
    """``auto`` made concrete: cuda if available, else cpu; bfloat16 on a GPU, float32 on the CPU.

    Raises ValueError for a CUDA device on a machine without one, before any model work.
    """
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if device in (None, "", "auto") else device
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device}: CUDA is not available on this machine; use cpu (or auto)")
    if dtype in (None, "", "auto"):
        dtype = "bfloat16" if str(device).startswith("cuda") else "float32"
    return str(device), str(dtype)


def validate_model_dir(model_dir: str | os.PathLike[str]) -> ModelLayout:
    """Check the directory layout and component classes; raise :class:`ModelDirectoryError`."""
    root = Path(model_dir)
    if not root.is_dir():
        raise ModelDirectoryError(f"model directory {root} does not exist")
    index_path = root / "model_index.json"
    if not index_path.is_file():
        raise ModelDirectoryError(
            f"{root} has no model_index.json; expected a diffusers directory such as "
            "nvidia/Cosmos-Predict2.5-2B revision diffusers/base/post-trained"
        )
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelDirectoryError(f"{index_path}: not valid JSON ({exc})") from exc
    found_class = index.get("_class_name")
    if found_class != PIPELINE_CLASS:
        raise ModelDirectoryError(
            f"{index_path}: _class_name is {found_class!r}, a different model family; "
            f"expected {PIPELINE_CLASS!r}"
        )
    for name, (library, classes) in EXPECTED_COMPONENTS.items():
        entry = index.get(name)
        if not isinstance(entry, list) or len(entry) != 2 or entry[1] is None:
            raise ModelDirectoryError(f"{index_path}: component {name!r} is missing")
        if entry[0] != library or (classes and entry[1] not in classes):
            want = f"{library}.{'/'.join(classes) or '<tokenizer>'}"
            raise ModelDirectoryError(
                f"{index_path}: component {name!r} is {entry[0]}.{entry[1]}; expected {want}"
            )
        folder = root / name
        if not folder.is_dir():
            raise ModelDirectoryError(f"component folder {folder} is missing")
        config_name = "scheduler_config.json" if name == "scheduler" else "config.json"
        if name != "tokenizer" and not (folder / config_name).is_file():
            raise ModelDirectoryError(f"{folder / config_name} is missing")
        if name == "tokenizer" and not any(folder.glob("tokenizer*")):
            raise ModelDirectoryError(f"{folder} holds no tokenizer files")
        if name in _WEIGHTED:
            _check_weights(folder)
    return ModelLayout(root, index)


def _check_weights(folder: Path) -> None:
    files = {p.name for p in folder.iterdir() if p.is_file()}
    if any(name.endswith(".safetensors") for name in files):
        for index_name in (n for n in files if n.endswith(".safetensors.index.json")):
            shards = set(json.loads((folder / index_name).read_text(encoding="utf-8"))["weight_map"].values())
            missing = sorted(shards - files)
            if missing:
                raise ModelDirectoryError(f"{folder / index_name} names missing shard(s): {missing}")
        return
    pickled = sorted(n for n in files if n.endswith(_PICKLE_SUFFIXES))
    hint = f" (found pickle weights {pickled}, which are never loaded)" if pickled else ""
    raise ModelDirectoryError(f"{folder} holds no .safetensors weights{hint}")


def missing_bytecode() -> str | None:
    """Why torch's modules run without cached bytecode, or None when they have it.

    Without it every process compiles torch, transformers and diffusers from source again: about
    9 s of each start on the GPU machine of benchmarks/RESULTS.md. Some images ship site-packages
    without ``__pycache__`` and set ``PYTHONDONTWRITEBYTECODE`` (pip compiles bytecode at install;
    ``uv pip install`` does not by default).
    """
    import torch

    cached = Path(importlib.util.cache_from_source(torch.__file__))  # honours PYTHONPYCACHEPREFIX
    if cached.exists():
        return None
    if sys.dont_write_bytecode:
        return f"PYTHONDONTWRITEBYTECODE is set and {cached.parent} holds none"
    return f"{cached.parent} holds none and cannot be written"


def _offline_kwargs() -> dict[str, Any]:
    return {"local_files_only": True}


def _placement_kwargs(device: Any) -> dict[str, Any]:
    """Read the safetensors straight onto ``device`` (no CPU copy first); None keeps them on the CPU."""
    return {} if device is None else {"device_map": str(device)}


def load_transformer(layout: ModelLayout, dtype: Any, device: Any = None) -> Any:
    from diffusers import CosmosTransformer3DModel

    global _base_loads
    model = CosmosTransformer3DModel.from_pretrained(
        layout.model_dir / "transformer",
        torch_dtype=dtype,
        use_safetensors=True,
        **_placement_kwargs(device),
        **_offline_kwargs(),
    )
    with _counter_lock:
        _base_loads += 1
    return model.eval().requires_grad_(False)


def load_vae(layout: ModelLayout, dtype: Any, device: Any = None) -> Any:
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan.from_pretrained(
        layout.model_dir / "vae",
        torch_dtype=dtype,
        use_safetensors=True,
        **_placement_kwargs(device),
        **_offline_kwargs(),
    )
    return vae.eval().requires_grad_(False)


def load_text_encoder(layout: ModelLayout, dtype: Any) -> Any:
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        layout.model_dir / "text_encoder", dtype=dtype, use_safetensors=True, **_offline_kwargs()
    )
    return model.eval().requires_grad_(False)


def load_tokenizer(layout: ModelLayout) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(layout.model_dir / "tokenizer", **_offline_kwargs())


def load_scheduler(layout: ModelLayout) -> Any:
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler.from_pretrained(layout.model_dir / "scheduler", **_offline_kwargs())
