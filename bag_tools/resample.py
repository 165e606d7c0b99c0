"""Resample a camera stream onto a fixed-rate grid by nearest timestamp, within a tolerance.

Grid point ``k`` sits at ``t0 + k * period``. It takes the source frame whose stamp is nearest
(the last one at or before it, or the first one after it); when that frame is further away than
the tolerance the point is empty (a gap), and no clip may span it: gaps are never stretched.
Streaming: each source frame is seen once and only the previous one is held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GridPoint:
    """One output time: ``index`` on the grid, its time, and the chosen source frame (or None)."""

    index: int
    time_ns: int
    item: Any | None
    source_stamp_ns: int | None


class NearestResampler:
    """Feed (stamp, item) in stamp order; get :class:`GridPoint` objects as they become final."""

    def __init__(self, t0_ns: int, period_ns: float, tolerance_ns: int) -> None:
        if period_ns <= 0:
            raise ValueError(f"resampling period must be positive, got {period_ns} ns")
        self.t0_ns = t0_ns
        self.period_ns = period_ns
        self.tolerance_ns = tolerance_ns
        self.next_index = 0
        self.prev: tuple[int, Any] | None = None
        self.out_of_order = 0

    def grid_time(self, index: int) -> int:
        return self.t0_ns + round(index * self.period_ns)

    def _choose(self, t: int, cur: tuple[int, Any] | None) -> GridPoint:
        best: tuple[int, Any] | None = None
        for cand in (self.prev, cur):
            if cand is not None and abs(cand[0] - t) <= self.tolerance_ns:
                if best is None or abs(cand[0] - t) < abs(best[0] - t):
                    best = cand
        index = self.next_index
        self.next_index += 1
        if best is None:
            return GridPoint(index, t, None, None)
        return GridPoint(index, t, best[1], best[0])

    def push(self, stamp_ns: int, item: Any) -> list[GridPoint]:
        """Add a source frame; returns the grid points it settles (possibly none)."""
        if self.prev is not None and stamp_ns <= self.prev[0]:
            self.out_of_order += 1
            return []
        out: list[GridPoint] = []
        cur = (stamp_ns, item)
        while self.grid_time(self.next_index) <= stamp_ns:
            out.append(self._choose(self.grid_time(self.next_index), cur))
        self.prev = cur
        return out

    def finish(self) -> list[GridPoint]:
        """Settle the grid points the last frame can still serve.

        Only those within half an output period after it (and the tolerance): the stream ends at
        its last frame, and holding that frame longer would invent time (one frame would give two
        identical one-frame clips).
        """
        out: list[GridPoint] = []
        if self.prev is None:
            return out
        reach = min(self.tolerance_ns, self.period_ns / 2)
        while self.grid_time(self.next_index) <= self.prev[0] + reach:
            out.append(self._choose(self.grid_time(self.next_index), None))
        return out
