"""Means and 95 % confidence intervals across clips and seeds, and paired differences to the base.

Method (stated in the report): the clip is the unit of independence. For each row and metric the
seeds of one clip are averaged first (finite values only), then a two-sided Student-t interval is
taken over the per-clip means: mean +- t(0.975, n-1) * sd / sqrt(n). Differences to the base are
paired by clip (row clip mean - base clip mean) and get the same interval; adapters and the ``still``
baseline get one (for ``still`` it reads "still minus base": a positive PSNR delta means the base
predicts worse than repeating the last frame). The still row has one record per clip (seed 0), so it
is one unit per clip like every other row. With one clip there is no interval (NaN bounds).

Bounded metrics (``MetricSpec.bounds``: SSIM in [-1, 1], distances and errors >= 0, ...) get the
t interval intersected with those bounds (clipped), deltas with the bounds of a difference. The
true mean lies inside the bounds, so clipping never changes whether the interval covers it (same
coverage) while a reported Sampson error of -0.038 px is impossible. A percentile bootstrap would
also respect the bounds but under-covers badly at the handful of clips evaluated here.
The t quantile is scipy's, exact for every df.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from cosmos_ros.evaluation.metrics import MOTION_THRESHOLD
from cosmos_ros.evaluation.results import BASE_ROW, REAL_ROW, EvalResults

CI_METHOD = (
    "95% Student-t interval over per-clip means (seeds of a clip averaged first); "
    "differences to the base paired by clip; clipped to the range a metric can take (e.g. >= 0)"
)


def t_quantile(p: float, df: float) -> float:
    """Student-t quantile for any ``df`` > 0 (scipy); replaces a table that was stepwise beyond 30."""
    from scipy.stats import t

    if not (0.0 < p < 1.0) or not df > 0:
        return math.nan
    return float(t.ppf(p, df))


def t975(df: int) -> float:
    """Two-sided 95 % Student-t quantile for ``df`` degrees of freedom (exact, every df)."""
    return t_quantile(0.975, float(df)) if df >= 1 else math.nan


@dataclass(frozen=True)
class MetricSpec:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    description: str
    #: Where the values live: per generated sample, in the cross-view records, or only in the real
    #: records (a property of the clips, not of a model: shown for reference, never gated).
    source: str = "sample"
    #: Whether the real clips have this statistic too (shown as a reference row).
    has_real: bool = False
    #: Range the values can take; confidence intervals are clipped to it (a mean cannot leave it).
    bounds: tuple[float, float] = (-math.inf, math.inf)


_NON_NEGATIVE = (0.0, math.inf)
_GREY_LEVELS = (0.0, 255.0)

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "psnr", "PSNR", "dB", True, "fidelity to the real continuation, mean of per-frame PSNR",
        bounds=_NON_NEGATIVE,
    ),
    MetricSpec(
        "psnr_moving", "PSNR on moving pixels", "dB", True,
        "PSNR over the pixels that move in the real clip (change by more than "
        f"{MOTION_THRESHOLD} grey levels from the last conditioning frame), squared error pooled over "
        "frames; a static background cannot hide a wrong motion here",
        bounds=_NON_NEGATIVE,
    ),
    MetricSpec(
        "moving_fraction", "Moving fraction", "", True,
        "share of the frame that moves in the real clip (the pixels PSNR on moving pixels is taken over)",
        source="real", has_real=True, bounds=(0.0, 1.0),
    ),
    MetricSpec(
        "ssim", "SSIM", "", True, "structural similarity to the real continuation, mean over frames",
        bounds=(-1.0, 1.0),
    ),
    MetricSpec(
        "lpips", "LPIPS", "", False, "learned perceptual distance (AlexNet), mean over frames",
        bounds=_NON_NEGATIVE,
    ),
    MetricSpec(
        "frame_diff_mean", "Frame difference", "grey levels", False,
        "mean absolute luma change between consecutive frames", has_real=True, bounds=_GREY_LEVELS,
    ),
    MetricSpec(
        "brightness_flicker", "Brightness flicker", "grey levels", False,
        "mean absolute change of mean frame brightness between consecutive frames", has_real=True,
        bounds=_GREY_LEVELS,
    ),
    MetricSpec(
        "warp_error", "Warping error", "grey levels", False,
        "luma error after warping each frame onto the next with Farneback optical flow", has_real=True,
        bounds=_GREY_LEVELS,
    ),
    MetricSpec(
        "temporal_sampson_px", "Temporal Sampson error", "px", False,
        "SIFT matches of consecutive frames vs a RANSAC fundamental matrix (< 1 excellent, > 5 poor)",
        has_real=True, bounds=_NON_NEGATIVE,
    ),
    MetricSpec(
        "cross_view_sampson_px", "Cross-view Sampson error", "px", False,
        "SIFT matches between cameras of one clip group vs one fundamental matrix for the rig",
        source="cross_view", has_real=True, bounds=_NON_NEGATIVE,
    ),
)  # fmt: skip


def metric_spec(key: str) -> MetricSpec:
    for spec in METRICS:
        if spec.key == key:
            return spec
    raise KeyError(f"unknown metric {key!r}; known: {', '.join(s.key for s in METRICS)}")


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def mean_ci(values: Iterable[float], bounds: tuple[float, float] = (-math.inf, math.inf)) -> Interval:
    """Mean and 95 % Student-t interval of the finite values, clipped to ``bounds``.

    Clipping keeps the coverage (the true mean is inside ``bounds``) and avoids impossible values
    such as a negative error; the mean itself is inside already.
    """
    arr = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    n = int(arr.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(arr.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half = t975(n - 1) * float(arr.std(ddof=1)) / math.sqrt(n)
    low, high = bounds
    return Interval(mean, max(mean - half, low), min(mean + half, high), n)


def _seed_average(pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    by_key: dict[str, list[float]] = {}
    for key, value in pairs:
        by_key.setdefault(key, []).append(value)
    out = {}
    for key, values in sorted(by_key.items()):
        finite = [v for v in values if math.isfinite(v)]
        out[key] = float(np.mean(finite)) if finite else math.nan
    return out


def unit_means(results: EvalResults, row: str, metric: str) -> dict[str, float]:
    """Per-unit means of one metric: unit = clip (or clip group for cross-view), seeds averaged."""
    spec = metric_spec(metric)
    if spec.source == "real" and row != REAL_ROW:
        return {}
    if spec.source == "cross_view":
        pairs = [
            (c.clip_group + "|" + "|".join(c.views), c.metrics.get("mean_px", math.nan))
            for c in results.cross_view
            if c.row == row
        ]
    elif row == REAL_ROW:
        pairs = [(r.clip_id, r.metrics[metric]) for r in results.real if metric in r.metrics]
    else:
        pairs = [
            (s.clip_id, s.metrics[metric]) for s in results.samples if s.row == row and metric in s.metrics
        ]
    return _seed_average(pairs)


def summarize(results: EvalResults) -> dict[str, dict[str, dict[str, object]]]:
    """Every measured metric: ``{metric: {row: {mean, low, high, n, n_missing, delta}}}``.

    ``delta`` (row minus base, paired by clip) is given to every row but the base and ``real``: the
    adapters and the ``still`` baseline. Rows absent from older metrics.json files simply do not appear.
    """
    summary: dict[str, dict[str, dict[str, object]]] = {}
    rows = ([REAL_ROW] if results.real else []) + results.row_names()
    for spec in METRICS:
        per_row: dict[str, dict[str, object]] = {}
        base_units = unit_means(results, BASE_ROW, spec.key)
        for row in rows:
            if row == REAL_ROW and not spec.has_real:
                continue
            units = unit_means(results, row, spec.key)
            if not units:
                continue
            entry: dict[str, object] = mean_ci(units.values(), spec.bounds).to_dict()
            entry["n_missing"] = sum(1 for v in units.values() if not math.isfinite(v))
            if row not in (BASE_ROW, REAL_ROW) and base_units:
                common = sorted(set(units) & set(base_units))
                low, high = spec.bounds
                delta_bounds = (low - high, high - low)  # a difference of two in-range values
                entry["delta"] = mean_ci((units[k] - base_units[k] for k in common), delta_bounds).to_dict()
            per_row[row] = entry
        if per_row:
            summary[spec.key] = per_row
    return summary
