"""Attach a LoRA or DoRA adapter (peft) to the frozen transformer, with fp32 adapter weights.

The adapter goes in through diffusers' own ``add_adapter`` so the state dict it produces has the
module names that stock ``load_lora_weights`` expects.
"""

from __future__ import annotations

from typing import Any

import torch


def lora_config(adapter_type: str, rank: int, alpha: float, target_modules: list[str]) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=int(rank),
        lora_alpha=float(alpha),
        target_modules=list(target_modules),
        init_lora_weights=True,
        use_dora=adapter_type == "dora",
        lora_dropout=0.0,
    )


def attach_adapter(
    transformer: torch.nn.Module, adapter_type: str, rank: int, alpha: float, target_modules: list[str]
) -> list[torch.nn.Parameter]:
    """Freeze the base, add the adapter, keep its weights in fp32; return the trainable parameters.

    Raises ``ValueError`` when no module of the base matches ``target_modules`` or the adapter
    cannot be built on the matched modules.
    """
    transformer.requires_grad_(False)
    config = lora_config(adapter_type, rank, alpha, target_modules)
    try:
        transformer.add_adapter(config)
    except (ValueError, TypeError, RuntimeError) as exc:
        names = sorted(
            {n.rsplit(".", 1)[-1] for n, m in transformer.named_modules() if isinstance(m, torch.nn.Linear)}
        )
        raise ValueError(
            f"the base transformer cannot take a {adapter_type} adapter on target_modules={target_modules}: "
            f"{exc}. Linear layer names in this base: {names}"
        ) from exc
    trainable = [p for p in transformer.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(f"target_modules={target_modules} matched no layer of the base transformer")
    for p in trainable:
        p.data = p.data.float()
    return trainable


def trainable_state(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable tensors by parameter name (for checkpoints; exact, fp32)."""
    return {n: p.detach() for n, p in transformer.named_parameters() if p.requires_grad}


def load_trainable_state(transformer: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    params = {n: p for n, p in transformer.named_parameters() if p.requires_grad}
    if set(params) != set(state):
        missing = sorted(set(params) - set(state))[:3]
        extra = sorted(set(state) - set(params))[:3]
        raise ValueError(
            f"{source}: adapter tensors do not match this run's adapter (missing e.g. {missing}, "
            f"unexpected e.g. {extra}); was it written with another adapter type, rank or targets?"
        )
    shapes = [
        (n, list(state[n].shape), list(p.shape)) for n, p in params.items() if state[n].shape != p.shape
    ]
    if shapes:
        name, saved, now = shapes[0]
        raise ValueError(
            f"{source}: {len(shapes)} adapter tensor(s) have other shapes than this run's adapter "
            f"(e.g. {name}: saved {saved}, now {now}); was it written with another rank?"
        )
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name])


def stock_lora_state_dict(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter in the layout ``save_lora_weights``/``load_lora_weights`` use (no prefix yet)."""
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(transformer).items()}


def adapter_config_dict(transformer: torch.nn.Module) -> dict[str, Any]:
    """The peft config of the attached adapter, as diffusers stores it in the safetensors metadata."""
    config = transformer.peft_config["default"].to_dict()
    for key, value in list(config.items()):
        if isinstance(value, set):
            config[key] = sorted(value)
    return config
