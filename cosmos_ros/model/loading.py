"""Strictly offline loading of a local Cosmos Predict 2.5 diffusers directory.

Validation happens before any weights are read, so a wrong directory fails fast with an error
that names the file, component or class at fault. Components are loaded one by one (not through
``DiffusionPipeline.from_pretrained``) so the 7B text encoder can be left unloaded until a prompt
is missing from the embedding cache.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
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
    if root.exists() and not root.is_dir():
        raise ModelDirectoryError(
            f"model directory {root} is a file, not a folder; give the folder that holds model_index.json"
        )
    if not root.is_dir():
        raise ModelDirectoryError(f"model directory {root} does not exist")
    index_path = root / "model_index.json"
    if not index_path.is_file():
        raise ModelDirectoryError(
            f"{root} has no model_index.json; expected a diffusers directory such as "
            "nvidia/Cosmos-Predict2.5-2B revision diffusers/base/post-trained"
        )
    index = read_json_object(index_path)
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
        if name != "tokenizer":
            read_json_object(folder / config_name)
        if name == "tokenizer" and not any(folder.glob("tokenizer*")):
            raise ModelDirectoryError(f"{folder} holds no tokenizer files")
        if name in _WEIGHTED:
            _check_weights(folder)
    _check_manifest_sizes(root)
    return ModelLayout(root, index)


def _check_manifest_sizes(root: Path) -> None:
    """Where the folder has a manifest (``cosmos-ros model verify --write``), its files' sizes (cheap)."""
    from cosmos_ros.model.manifest import ManifestError, check_sizes

    try:
        check_sizes(root)
    except ManifestError as exc:
        raise ModelDirectoryError(str(exc)) from exc


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object file of the model; ModelDirectoryError naming it where it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDirectoryError(f"{path}: not valid JSON ({exc}); the file is damaged") from exc
    except OSError as exc:
        raise ModelDirectoryError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not isinstance(data, dict):
        raise ModelDirectoryError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def check_safetensors(path: Path) -> None:
    """Refuse a truncated or header-damaged safetensors file by name, reading its header only.

    Why: diffusers reports either as "Unable to load weights" after the model was built, with a
    traceback; the header says how many bytes of tensor data must follow it.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if length < 2 or length > size - 8:
            raise ModelDirectoryError(
                f"{path}: not a readable safetensors file (its {size}-byte length does not fit the header "
                "it announces: truncated or damaged); replace it with an intact copy"
            )
        raw = fh.read(length)
    try:
        header = json.loads(raw)
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError) as exc:
        raise ModelDirectoryError(
            f"{path}: its safetensors header is damaged ({type(exc).__name__}); "
            "replace it with an intact copy"
        ) from exc
    data = size - 8 - length
    if max(ends, default=0) != data:
        raise ModelDirectoryError(
            f"{path}: holds {data} bytes of tensor data but its header lists {max(ends, default=0)}: "
            "truncated or damaged; replace it with an intact copy"
        )


def _check_weights(folder: Path) -> None:
    files = {p.name for p in folder.iterdir() if p.is_file()}
    if any(name.endswith(".safetensors") for name in files):
        for index_name in (n for n in files if n.endswith(".safetensors.index.json")):
            weight_map = read_json_object(folder / index_name).get("weight_map")
            if not isinstance(weight_map, dict):
                raise ModelDirectoryError(f"{folder / index_name}: no weight_map object")
            missing = sorted(set(map(str, weight_map.values())) - files)
            if missing:
                raise ModelDirectoryError(f"{folder / index_name} names missing shard(s): {missing}")
        for name in sorted(n for n in files if n.endswith(".safetensors")):
            check_safetensors(folder / name)
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


@contextlib.contextmanager
def component_errors(folder: Path, what: str) -> Iterator[None]:
    """Errors while building a component from its files, as one ModelDirectoryError naming the folder.

    Why: a config.json that does not fit its weights (or a damaged one) failed deep in diffusers
    or transformers with a traceback. Running out of memory is not a folder problem: it passes.
    """
    import torch

    try:
        yield
    except torch.OutOfMemoryError:
        raise
    except ModelDirectoryError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        if len(detail) > 240:  # diffusers appends advice on ignore_mismatched_sizes, which is not ours
            detail = detail.split(". ", 1)[0]
        raise ModelDirectoryError(
            f"{folder}: cannot load the {what} ({detail}); its config and weights are damaged or do not "
            "belong together"
        ) from exc


def load_transformer(layout: ModelLayout, dtype: Any, device: Any = None) -> Any:
    from diffusers import CosmosTransformer3DModel

    global _base_loads
    folder = layout.model_dir / "transformer"
    with component_errors(folder, "transformer"):
        model = CosmosTransformer3DModel.from_pretrained(
            folder, torch_dtype=dtype, use_safetensors=True, **_placement_kwargs(device), **_offline_kwargs()
        )
    with _counter_lock:
        _base_loads += 1
    return model.eval().requires_grad_(False)


def load_vae(layout: ModelLayout, dtype: Any, device: Any = None) -> Any:
    from diffusers import AutoencoderKLWan

    folder = layout.model_dir / "vae"
    with component_errors(folder, "VAE"):
        vae = AutoencoderKLWan.from_pretrained(
            folder, torch_dtype=dtype, use_safetensors=True, **_placement_kwargs(device), **_offline_kwargs()
        )
    return vae.eval().requires_grad_(False)


def load_text_encoder(layout: ModelLayout, dtype: Any) -> Any:
    from transformers import Qwen2_5_VLForConditionalGeneration

    folder = layout.model_dir / "text_encoder"
    with component_errors(folder, "text encoder"):
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            folder, dtype=dtype, use_safetensors=True, **_offline_kwargs()
        )
    return model.eval().requires_grad_(False)


def load_tokenizer(layout: ModelLayout) -> Any:
    from transformers import AutoTokenizer

    folder = layout.model_dir / "tokenizer"
    with component_errors(folder, "tokenizer"):
        return AutoTokenizer.from_pretrained(folder, **_offline_kwargs())


def load_scheduler(layout: ModelLayout) -> Any:
    from diffusers import UniPCMultistepScheduler

    folder = layout.model_dir / "scheduler"
    with component_errors(folder, "scheduler"):
        return UniPCMultistepScheduler.from_pretrained(folder, **_offline_kwargs())
