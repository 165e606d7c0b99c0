"""Adapters merged into the base weights, switched in place in milliseconds.

Why: a LoRA attached the peft way adds extra matmuls to every forward (stock: about +7 %), and
swapping adapters from disk costs a file read. Here each staged adapter's low-rank factors live
on the device; activating one rewrites the targeted ``nn.Linear`` weights as
``W = W0 + scale * B @ A`` (DoRA: rows rescaled to the learned magnitude) from a pristine copy of
``W0`` kept beside them. The forward then costs exactly what the base costs, switching is a few
hundred small GEMMs, "no adapter" restores ``W0`` bit for bit, and because the parameters are
updated in place a ``torch.compile``-d transformer (CUDA graphs too) stays valid without any
recompilation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cosmos_ros.model.adapters import AdapterIncompatible, StagedAdapter


@dataclass
class _ModuleDelta:
    """One targeted Linear's low-rank update, on the device, ready to merge."""

    linear: Any  # torch.nn.Linear
    lora_a: Any  # [rank, in]
    lora_b: Any  # [out, rank]
    scale: float
    magnitude: Any | None  # [out] for DoRA, None for LoRA


class MergedAdapterSwitcher:
    """Keep several adapters staged on the device and merge one at a time into the weights."""

    def __init__(self, transformer: Any) -> None:
        self.transformer = transformer
        self._pristine: dict[str, Any] = {}
        self._staged: dict[str, dict[str, _ModuleDelta]] = {}
        self._active: str | None = None

    @property
    def active(self) -> str | None:
        return self._active

    @property
    def staged(self) -> list[str]:
        return list(self._staged)

    def stage(self, name: str, adapter: StagedAdapter) -> None:
        """Check ``adapter`` against the transformer and copy its factors to the device."""
        import torch

        modules = dict(self.transformer.named_modules())
        config = adapter.lora_config or {}
        default_alpha = config.get("lora_alpha")
        alpha_pattern = config.get("alpha_pattern") or {}
        use_rslora = bool(config.get("use_rslora", False))
        deltas: dict[str, _ModuleDelta] = {}
        for module_name in sorted({k.rsplit(".lora_", 1)[0] for k in adapter.state_dict}):
            linear = modules.get(module_name)
            if not isinstance(linear, torch.nn.Linear):
                raise AdapterIncompatible(
                    f"{adapter.source}: targets {module_name!r}, not a Linear layer here"
                )
            lora_a = _factor(adapter, module_name, "lora_A")
            lora_b = _factor(adapter, module_name, "lora_B")
            rank = lora_a.shape[0]
            out_features, in_features = linear.weight.shape
            if lora_a.shape != (rank, in_features) or lora_b.shape != (out_features, rank):
                raise AdapterIncompatible(
                    f"{adapter.source}: {module_name} has LoRA shapes A{tuple(lora_a.shape)} "
                    f"B{tuple(lora_b.shape)}, the base layer needs A[r, {in_features}] B[{out_features}, r]"
                )
            alpha = _pattern_value(alpha_pattern, module_name, default_alpha if default_alpha else rank)
            scale = alpha / (rank**0.5 if use_rslora else rank)
            magnitude = _magnitude(adapter, module_name)
            if magnitude is not None and magnitude.numel() != out_features:
                raise AdapterIncompatible(
                    f"{adapter.source}: {module_name} DoRA magnitude has {magnitude.numel()} values, "
                    f"the layer has {out_features} outputs"
                )
            device = linear.weight.device
            deltas[module_name] = _ModuleDelta(
                linear=linear,
                lora_a=lora_a.to(device=device, dtype=torch.float32),
                lora_b=lora_b.to(device=device, dtype=torch.float32),
                scale=float(scale),
                magnitude=None if magnitude is None else magnitude.to(device=device, dtype=torch.float32),
            )
        if not deltas:
            raise AdapterIncompatible(f"{adapter.source}: no LoRA factors found")
        for module_name, delta in deltas.items():
            if module_name not in self._pristine:
                self._pristine[module_name] = delta.linear.weight.detach().clone()
        self._staged[name] = deltas

    def unstage(self, name: str) -> None:
        if name == self._active:
            self.activate(None)
        self._staged.pop(name, None)

    def activate(self, name: str | None) -> None:
        """Make ``name`` (or the bare base with ``None``) the weights the next forward uses."""
        import torch

        if name is not None and name not in self._staged:
            raise KeyError(f"adapter {name!r} is not staged; staged: {sorted(self._staged) or 'none'}")
        if name == self._active:
            return
        with torch.no_grad():
            if self._active is not None:
                for module_name, delta in self._staged[self._active].items():
                    delta.linear.weight.copy_(self._pristine[module_name])
            if name is not None:
                for module_name, delta in self._staged[name].items():
                    base = self._pristine[module_name].float()
                    merged = torch.addmm(base, delta.lora_b, delta.lora_a, alpha=delta.scale)
                    if delta.magnitude is not None:
                        merged *= (delta.magnitude / merged.norm(p=2, dim=1)).unsqueeze(1)
                    delta.linear.weight.copy_(merged)
        self._active = name


def _factor(adapter: StagedAdapter, module_name: str, kind: str) -> Any:
    for key in (f"{module_name}.{kind}.weight", f"{module_name}.{kind}.default.weight"):
        if key in adapter.state_dict:
            return adapter.state_dict[key]
    raise AdapterIncompatible(f"{adapter.source}: {module_name} has no {kind} weight")


def _magnitude(adapter: StagedAdapter, module_name: str) -> Any | None:
    for key in (
        f"{module_name}.lora_magnitude_vector",
        f"{module_name}.lora_magnitude_vector.weight",
        f"{module_name}.lora_magnitude_vector.default.weight",
    ):
        if key in adapter.state_dict:
            return adapter.state_dict[key].flatten()
    return None


def _pattern_value(pattern: dict[str, Any], module_name: str, default: float) -> float:
    """peft's ``alpha_pattern``: the longest key that the module name ends with wins."""
    matches = [k for k in pattern if module_name == k or module_name.endswith("." + k)]
    return float(pattern[max(matches, key=len)]) if matches else float(default)
