"""One progress type for all long work.

Library code reports through a :data:`ProgressCallback`; the CLI renders the events as a tqdm
progress bar and the generation node turns them into action feedback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    """A snapshot of long-running work: ``step`` of ``total`` in ``stage``."""

    stage: str
    step: int
    total: int
    elapsed: float
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


ProgressCallback = Callable[[ProgressEvent], None]


class Stopwatch:
    """Build :class:`ProgressEvent` objects that carry the time since start."""

    def __init__(self, callback: ProgressCallback | None, stage: str, total: int) -> None:
        self.callback = callback
        self.stage = stage
        self.total = total
        self.start = time.monotonic()

    def report(self, step: int, message: str = "", **metrics: float) -> None:
        if self.callback is not None:
            self.callback(
                ProgressEvent(self.stage, step, self.total, time.monotonic() - self.start, message, metrics)
            )


class TqdmProgress:
    """A :data:`ProgressCallback` that draws one tqdm bar per stage (for the CLI)."""

    def __init__(self, unit: str = "it", **tqdm_kwargs: Any) -> None:
        self.unit = unit
        self.kwargs = tqdm_kwargs
        self._bar: Any = None
        self._stage: str | None = None

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm.auto import tqdm

        if self._bar is None or event.stage != self._stage:
            self.close()
            self._bar = tqdm(total=event.total, desc=event.stage, unit=self.unit, **self.kwargs)
            self._stage = event.stage
        self._bar.n = event.step
        if event.metrics:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in event.metrics.items()}, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
