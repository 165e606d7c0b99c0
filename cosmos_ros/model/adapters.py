"""LoRA/DoRA adapters: read (safetensors only), check against the base, stage in memory.

An adapter is read once into a :class:`StagedAdapter` (CPU state dict + LoRA config metadata)
and checked against the loaded transformer *before* peft touches the model, so an incompatible
file is refused with a message naming the module and shapes at fault, and the model is left as
it was. Staged adapters can be re-attached or hot-swapped later without reading the disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmos_ros.model.adapter_folder import AdapterMetadata, read_adapter_metadata, weights_path

#: The diffusers pipeline writes LoRA keys under this prefix (``save_lora_weights``).
TRANSFORMER_PREFIX = "transformer"
_KEY = re.compile(
    r"^(?P<module>.+?)\.(?P<kind>lora_A|lora_B|lora_magnitude_vector)(?:\.(?P<adapter>[A-Za-z0-9_-]+))?"
    r"(?:\.(?P<param>weight|bias))?$"
)


class AdapterIncompatible(ValueError):
    """The adapter cannot be used with this base model (or is not a readable adapter at all)."""


@dataclass
class StagedAdapter:
    """An adapter read into memory, ready to attach to (or hot-swap into) the transformer."""

    source: Path
    state_dict: dict[str, Any]  # module-relative keys (no "transformer." prefix), CPU tensors
    lora_config: dict[str, Any] | None  # peft LoraConfig fields saved by diffusers, prefix removed
    metadata: AdapterMetadata | None
    adapter_type: str  # "lora" | "dora"
    rank: int
    sha256: str
    target_modules: list[str]

    @property
    def adapter_id(self) -> str:
        """``<folder name>@<first 12 hex of the weights' sha256>``."""
        return f"{self.source.parent.name}@{self.sha256[:12]}"


def read_adapter(folder_or_file: str | os.PathLike[str]) -> StagedAdapter:
    """Read an adapter folder or ``.safetensors`` file; refuse pickles and corrupt files."""
    from safetensors import safe_open
    from safetensors.torch import load as load_bytes

    path = weights_path(folder_or_file)
    folder = path.parent if Path(folder_or_file).is_file() else Path(folder_or_file)
    raw = path.read_bytes()
    try:
        tensors = load_bytes(raw)
        with safe_open(path, framework="pt") as fh:
            file_meta = fh.metadata() or {}
    except Exception as exc:
        raise AdapterIncompatible(
            f"{path} is not a readable safetensors file (corrupt or truncated): {exc}"
        ) from exc
    if not tensors:
        raise AdapterIncompatible(f"{path} holds no tensors")
    for key, tensor in tensors.items():  # a NaN weight makes every video all black
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise AdapterIncompatible(
                f"{path}: tensor {key} holds non-finite values (NaN or inf); the adapter is damaged or its "
                "training diverged, and it would give black videos"
            )
    metadata = read_adapter_metadata(folder) if folder.is_dir() else None

    keys = list(tensors)
    prefixed = [k for k in keys if k.startswith(TRANSFORMER_PREFIX + ".")]
    if prefixed and len(prefixed) != len(keys):
        others = sorted(set(keys) - set(prefixed))[:3]
        raise AdapterIncompatible(
            f"{path}: only transformer LoRA weights are supported; found other keys such as {others}"
        )
    strip = len(TRANSFORMER_PREFIX) + 1 if prefixed else 0
    state_dict = {k[strip:]: v for k, v in tensors.items()}
    bad = [k for k in state_dict if not _KEY.match(k)]
    if bad:
        raise AdapterIncompatible(
            f"{path}: {len(bad)} key(s) are not PEFT LoRA/DoRA weights (e.g. {bad[0]!r}); accepted: "
            "'<module>.lora_A.weight', '<module>.lora_B.weight', '<module>.lora_magnitude_vector'"
        )

    lora_config = None
    raw_config = file_meta.get("lora_adapter_metadata")
    if raw_config:
        try:
            parsed = json.loads(raw_config)
        except json.JSONDecodeError as exc:
            raise AdapterIncompatible(f"{path}: lora_adapter_metadata is not valid JSON ({exc})") from exc
        pre = TRANSFORMER_PREFIX + "."
        lora_config = {k.removeprefix(pre): v for k, v in parsed.items() if k.startswith(pre) or not prefixed}

    is_dora = any(".lora_magnitude_vector" in k for k in state_dict)
    ranks = {int(v.shape[0]) for k, v in state_dict.items() if ".lora_A." in k and v.ndim == 2}
    modules = sorted({_KEY.match(k).group("module") for k in state_dict})  # type: ignore[union-attr]
    targets = sorted({re.sub(r"^.*?\.\d+\.", "", m) for m in modules})
    return StagedAdapter(
        source=path,
        state_dict=state_dict,
        lora_config=lora_config,
        metadata=metadata,
        adapter_type="dora" if is_dora else "lora",
        rank=max(ranks) if ranks else 0,
        sha256=hashlib.sha256(raw).hexdigest(),
        target_modules=targets,
    )


def check_compatibility(staged: StagedAdapter, transformer: Any, base_fingerprint: str) -> None:
    """Refuse (``AdapterIncompatible``) an adapter made for another base, naming what differs."""
    meta = staged.metadata
    if meta is not None and meta.base_fingerprint and meta.base_fingerprint != base_fingerprint:
        raise AdapterIncompatible(
            f"adapter {staged.source} was trained on base {meta.base_fingerprint}, but the loaded base is "
            f"{base_fingerprint}; retrain it on this base or load the base it was made for"
        )
    missing: list[str] = []
    for key, tensor in staged.state_dict.items():
        match = _KEY.match(key)
        assert match is not None
        name, kind = match.group("module"), match.group("kind")
        try:
            module = transformer.get_submodule(name)
        except AttributeError:
            missing.append(name)
            continue
        layer = getattr(module, "base_layer", module)
        in_f, out_f = getattr(layer, "in_features", None), getattr(layer, "out_features", None)
        if in_f is None or out_f is None:
            raise AdapterIncompatible(
                f"adapter {staged.source}: {name!r} is a {type(layer).__name__}, "
                "not a Linear layer LoRA can target"
            )
        if match.group("param") == "bias":
            expected: tuple[int, ...] = (out_f,) if kind == "lora_B" else (tensor.shape[0],)
        elif kind == "lora_A":
            expected = (tensor.shape[0], in_f)
        elif kind == "lora_B":
            expected = (out_f, tensor.shape[1] if tensor.ndim == 2 else 0)
        else:
            expected = (out_f,)
        if tuple(tensor.shape) != expected:
            raise AdapterIncompatible(
                f"adapter {staged.source} does not fit this base: {key} has shape {tuple(tensor.shape)}, but "
                f"{name} is Linear({in_f} -> {out_f}) so it must be {expected}; it was made for a different "
                "base model (other layer sizes)"
            )
    if missing:
        uniq = sorted(set(missing))
        raise AdapterIncompatible(
            f"adapter {staged.source} targets {len(uniq)} module(s) this base does not have, "
            f"e.g. {uniq[0]!r}; "
            "it was made for a different model architecture"
        )


def adapter_summary(staged: StagedAdapter) -> dict[str, Any]:
    """What metadata records about an adapter."""
    return {
        "source": str(staged.source),
        "sha256": staged.sha256,
        "type": staged.adapter_type,
        "rank": staged.rank,
        "target_modules": staged.target_modules,
        "base_fingerprint": staged.metadata.base_fingerprint if staged.metadata else None,
    }
