"""A lean training forward for the peft LoRA/DoRA layers of the frozen transformer.

peft's ``lora.Linear.forward`` is general: several adapters, dropout, mixed batches, and it casts
each layer's input to the adapter's dtype. Training here has one adapter, no dropout and fp32
adapter weights under bf16 autocast, where that cast costs a full fp32 copy of every targeted
layer's input, and for DoRA the fp32 magnitude promotes the whole output chain (and what
autograd saves of it) to fp32. The lean forward computes the same function without those
copies:

- LoRA: ``y = base(x) + s * B(A(x))``;
- DoRA: ``y = g * (base(x) - bias + s * B(A(x))) + bias`` with ``g = m / ||W + s*B@A||_row``,
  the norm detached as in peft (DoRA paper, section 4.3) and computed once in fp32 per call.

Only the forward of the module instances changes: parameter names, the state dict, checkpoints
and the saved adapter stay peft's, so stock ``load_lora_weights`` reads the result as before.
"""

from __future__ import annotations

from typing import Any

import torch


def _lean_forward(module: Any, adapter: str, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    base = module.base_layer
    if module.disable_adapters or module.merged or adapter not in module.active_adapters:
        return base(x, *args, **kwargs)
    result = base(x, *args, **kwargs)
    lora_a, lora_b = module.lora_A[adapter], module.lora_B[adapter]
    scaling = module.scaling[adapter]
    update = lora_b(lora_a(x))
    if adapter not in module.lora_magnitude_vector:
        return result + update * scaling
    magnitude = module.lora_magnitude_vector[adapter].weight
    # Detached, as in peft (no gradient through the norm), and in fp32 even under autocast.
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        weight = base.weight.float() + scaling * (lora_b.weight.float() @ lora_a.weight.float())
        norm = torch.linalg.vector_norm(weight, dim=1)
    scale = (magnitude / norm).to(result.dtype)
    bias = base.bias
    if bias is None:
        return scale * (result + update * scaling)
    return scale * (result - bias + update * scaling) + bias


_LEAN_CLASSES: dict[type, type] = {}


def _lean_class(cls: type) -> type:
    """A subclass of peft's layer class whose ``forward`` is the lean one.

    The class of each layer instance is swapped rather than its ``forward`` attribute: a bound
    function per instance would make ``torch.compile`` guard on each object and recompile the
    shared block code once per block (past its recompile limit).
    """
    if cls not in _LEAN_CLASSES:

        def forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            return _lean_forward(self, self._lean_adapter, x, *args, **kwargs)

        _LEAN_CLASSES[cls] = type(f"Lean{cls.__name__}", (cls,), {"forward": forward})
    return _LEAN_CLASSES[cls]


def install_lean_forward(transformer: torch.nn.Module, adapter: str = "default") -> int:
    """Give every peft LoRA/DoRA ``Linear`` of ``transformer`` the lean forward; return how many.

    Raises ``ValueError`` for a layer the lean forward does not cover (dropout, several adapters,
    ``fan_in_fan_out``), rather than silently computing something else.
    """
    from peft.tuners.lora.layer import Linear as LoraLinear

    count = 0
    for name, module in transformer.named_modules():
        if not isinstance(module, LoraLinear):
            continue
        problems = []
        if set(module.lora_A.keys()) != {adapter}:
            problems.append(f"adapters {sorted(module.lora_A.keys())} (expected only {adapter!r})")
        if not isinstance(module.lora_dropout[adapter], torch.nn.Identity):
            problems.append("lora_dropout > 0")
        if getattr(module, "fan_in_fan_out", False):
            problems.append("fan_in_fan_out")
        if not isinstance(module.base_layer, torch.nn.Linear):
            problems.append(f"base layer {type(module.base_layer).__name__} (expected torch.nn.Linear)")
        if problems:
            raise ValueError(f"lean adapter forward cannot serve layer {name}: {', '.join(problems)}")
        module._lean_adapter = adapter
        if type(module) not in _LEAN_CLASSES.values():
            module.__class__ = _lean_class(type(module))
        count += 1
    return count
