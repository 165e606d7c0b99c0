"""Safety checker policy: NVIDIA's guardrail when installed; never silently disabled.

``auto``      use ``cosmos_guardrail.CosmosSafetyChecker`` when it imports and starts; otherwise
              log a warning and run with the pass-through stand-in (recorded in metadata).
``required``  the guardrail must import and start, else loading fails.
``off``       the pass-through stand-in; logs a warning at start.

The stand-in must be a diffusers ``ModelMixin``: the pipeline derives its execution device
from its components, and it calls ``check_text_safety``/``check_video_safety`` on them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from diffusers import ConfigMixin, ModelMixin

log = logging.getLogger(__name__)

SAFETY_POLICIES: tuple[str, ...] = ("auto", "required", "off")


class PassThroughSafetyChecker(ModelMixin, ConfigMixin):
    """Accepts every prompt and video unchanged (used when the guardrail is off or missing)."""

    def __init__(self) -> None:
        super().__init__()
        # One buffer so the module has a device and dtype like every other component.
        self.register_buffer("_device_anchor", torch.zeros(1), persistent=False)

    def check_text_safety(self, prompt: str) -> bool:
        return True

    def check_video_safety(self, frames: np.ndarray) -> np.ndarray:
        return frames


def make_safety_checker(policy: str) -> tuple[Any, str]:
    """Return ``(checker, description)`` for ``policy``; the description goes into metadata."""
    if policy not in SAFETY_POLICIES:
        raise ValueError(f"safety_checker {policy!r} is not a policy; accepted: {', '.join(SAFETY_POLICIES)}")
    if policy == "off":
        log.warning(
            "safety checker is OFF (safety_checker=off): prompts and generated videos are not checked; "
            "the NVIDIA Open Model License expects a guardrail in deployments"
        )
        return PassThroughSafetyChecker(), "off"
    try:
        from cosmos_guardrail import CosmosSafetyChecker
    except ImportError as exc:
        if policy == "required":
            raise RuntimeError(
                "safety_checker=required but cosmos_guardrail is not installed (pip install cosmos_guardrail)"
            ) from exc
        log.warning(
            "cosmos_guardrail is not installed: running WITHOUT content safety checks (safety_checker=auto); "
            "install cosmos_guardrail, or pass safety_checker=off to acknowledge"
        )
        return PassThroughSafetyChecker(), "none (auto: cosmos_guardrail not installed)"
    try:
        return CosmosSafetyChecker(), "cosmos_guardrail"
    except Exception as exc:
        if policy == "required":
            raise RuntimeError(
                f"safety_checker=required but cosmos_guardrail failed to start: {exc}"
            ) from exc
        log.warning("cosmos_guardrail failed to start (%s): running WITHOUT content safety checks", exc)
        return PassThroughSafetyChecker(), f"none (auto: cosmos_guardrail failed: {exc})"
