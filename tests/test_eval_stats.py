"""Exact Student-t quantiles and confidence intervals that stay inside a metric's range (issue 20)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cosmos_ros.evaluation import stats
from cosmos_ros.evaluation.results import EvalResults, RowInfo, SampleRecord

# Reference values from scipy.stats.t.ppf (6 decimals), the table the old code only had for df <= 30.
T975_REFERENCE = {
    1: 12.706205,
    2: 4.302653,
    10: 2.228139,
    30: 2.042272,
    40: 2.021075,
    45: 2.014103,
    60: 2.000298,
    100: 1.983972,
    1000: 1.962339,
}


@pytest.mark.parametrize(("df", "expected"), sorted(T975_REFERENCE.items()))
def test_t975_is_exact_for_every_df(df: int, expected: float) -> None:
    assert stats.t975(df) == pytest.approx(expected, abs=1e-6)


def test_t975_decreases_strictly_between_30_and_200() -> None:
    """The old table was flat on 31..40, 41..60 and 61..120, so intervals jumped with the clip count."""
    values = [stats.t975(df) for df in range(30, 201)]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert values[-1] > 1.959964  # always above the normal quantile
    assert math.isnan(stats.t975(0))


def test_t_quantile_other_levels_and_symmetry() -> None:
    assert stats.t_quantile(0.995, 3) == pytest.approx(5.840909, abs=1e-6)
    assert stats.t_quantile(0.025, 10) == pytest.approx(-2.228139, abs=1e-6)
    assert stats.t_quantile(0.5, 7) == 0.0
    assert stats.t_quantile(0.9, 4.5) == pytest.approx(1.500885, abs=1e-6)  # fractional df


def test_interval_of_a_non_negative_metric_near_zero_stays_non_negative() -> None:
    values = [0.0, 0.0, 0.01, 0.3]
    unclipped = stats.mean_ci(values)
    assert unclipped.low < 0  # the plain t interval leaves the range ...
    clipped = stats.mean_ci(values, (0.0, math.inf))
    assert clipped.low == 0.0  # ... the reported one does not
    assert clipped.high == pytest.approx(unclipped.high) and clipped.mean == pytest.approx(np.mean(values))


def test_interval_of_a_unit_range_metric_stays_below_one() -> None:
    interval = stats.mean_ci([0.99, 1.0, 0.7], (0.0, 1.0))
    assert 0.0 <= interval.low <= interval.mean <= interval.high == 1.0


def test_bounded_metrics_declare_their_range() -> None:
    assert stats.metric_spec("ssim").bounds == (-1.0, 1.0)
    assert stats.metric_spec("moving_fraction").bounds == (0.0, 1.0)
    for key in ("temporal_sampson_px", "cross_view_sampson_px", "lpips", "psnr", "warp_error"):
        assert stats.metric_spec(key).bounds[0] == 0.0


def _sampson_results(values: dict[str, list[float]]) -> EvalResults:
    rows = [RowInfo(name, "base" if name == "base" else "adapter", "sha256:aa") for name in values]
    samples = [
        SampleRecord(row, f"c{c}", 0, "g", "/cam", {"temporal_sampson_px": v}, {}, {}, f"v/c{c}.mp4")
        for row, per_clip in values.items()
        for c, v in enumerate(per_clip)
    ]
    return EvalResults(
        settings={"seeds": 1},
        dataset={"clip_ids": [f"c{c}" for c in range(len(values["base"]))]},
        base={"fingerprint": "sha256:aa"},
        rows=rows,
        samples=samples,
        real=[],
        cross_view=[],
        lpips={"available": False},
        code_version="0.1.0",
        run={},
    )


def test_summary_never_reports_a_negative_sampson_error() -> None:
    """Regression for the report's 'Sampson: -0.038' lower bound; deltas stay signed."""
    results = _sampson_results({"base": [0.0, 0.0, 0.02, 0.25], "a@1": [0.3, 0.3, 0.32, 0.55]})
    summary = stats.summarize(results)["temporal_sampson_px"]
    assert summary["base"]["low"] == 0.0 and summary["base"]["high"] > summary["base"]["mean"] > 0
    assert summary["a@1"]["delta"]["mean"] == pytest.approx(0.3)
    assert summary["a@1"]["delta"]["low"] == pytest.approx(0.3)  # zero spread, no clipping needed
