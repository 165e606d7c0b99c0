"""metrics.json round trip, the confidence intervals, the gate rules and the SVG charts (no model needed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cosmos_ros.evaluation import stats
from cosmos_ros.evaluation.gate import GateConfig, GateRule, evaluate_gate, load_gate, parse_rule
from cosmos_ros.evaluation.report import bar_chart_svg, line_chart_svg, render_html, side_by_side
from cosmos_ros.evaluation.results import (
    BASE_ROW,
    REAL_ROW,
    SCHEMA,
    STILL_ROW,
    CrossViewRecord,
    EvalResults,
    RealRecord,
    ResultsFormatError,
    RowInfo,
    SampleRecord,
    read_results,
    write_results,
)


def _results() -> EvalResults:
    rows = [RowInfo("base", "base", "sha256:aa"), RowInfo("a@1", "adapter", "sha256:bb", adapter_ref="a@1")]
    samples = []
    for r, row in enumerate(rows):
        for c, clip in enumerate(("c0", "c1", "c2")):
            for seed in (0, 1):
                psnr = 20.0 + r + c + 0.1 * seed
                samples.append(
                    SampleRecord(
                        row.name, clip, seed, "g", "/cam", {"psnr": psnr, "temporal_sampson_px": math.nan},
                        {"psnr": [psnr, math.inf]}, {"temporal_sampson": "too few"}, f"v/{clip}.mp4",
                    )
                )  # fmt: skip
    return EvalResults(
        settings={"seeds": 2, "preset": "full"},
        dataset={"path": "d", "split": "test", "manifest_sha256": "ff", "clip_ids": ["c0", "c1", "c2"]},
        base={"fingerprint": "sha256:aa"},
        rows=rows,
        samples=samples,
        real=[RealRecord("c0", "g", "/cam", {"warp_error": 1.5})],
        cross_view=[CrossViewRecord("real", "g", None, ["/a", "/b"], ["c0", "c1"], {"mean_px": 0.3})],
        lpips={"available": False, "reason": "not installed"},
        code_version="0.1.0",
        run={"duration_s": 1.0},
    )


def test_round_trip_keeps_every_value_including_infinity_and_nan(tmp_path):
    results = _results()
    results.summary = stats.summarize(results)
    path = write_results(tmp_path, results)
    text = path.read_text()
    json.loads(text)  # strict JSON
    assert "NaN" in text and "Infinity" in text
    back = read_results(tmp_path)
    assert back.to_dict() == results.to_dict()
    assert back.samples[0].per_frame["psnr"][1] == math.inf and math.isnan(
        back.samples[0].metrics["temporal_sampson_px"]
    )
    assert back.schema == SCHEMA


def test_reader_names_the_fault(tmp_path):
    data = _results().to_dict()
    data["schema"] = "other/9"
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    with pytest.raises(ResultsFormatError, match="schema"):
        read_results(tmp_path)
    data = _results().to_dict()
    data["samples"][0]["metrics"]["psnr"] = "high"
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    with pytest.raises(ResultsFormatError, match=r"samples\[0\]\.metrics\.psnr"):
        read_results(tmp_path)


def test_summary_averages_seeds_per_clip_then_takes_a_t_interval():
    results = _results()
    summary = stats.summarize(results)
    base = summary["psnr"]["base"]
    clip_means = np.array([20.05, 21.05, 22.05])
    half = stats.t975(2) * clip_means.std(ddof=1) / math.sqrt(3)
    assert base["n"] == 3 and base["mean"] == pytest.approx(clip_means.mean())
    assert base["low"] == pytest.approx(clip_means.mean() - half) and base["high"] == pytest.approx(
        clip_means.mean() + half
    )
    delta = summary["psnr"]["a@1"]["delta"]
    assert delta["mean"] == pytest.approx(1.0) and delta["low"] == pytest.approx(1.0)  # zero spread
    assert summary["temporal_sampson_px"]["base"]["n_missing"] == 3
    assert summary["warp_error"]["real"]["mean"] == 1.5
    assert summary["cross_view_sampson_px"]["real"]["mean"] == 0.3


def test_t_quantiles_and_small_samples():
    assert stats.t975(1) == pytest.approx(12.706205, abs=1e-6)
    assert stats.t975(1000) == pytest.approx(1.962339, abs=1e-6)
    one = stats.mean_ci([3.0, math.nan])
    assert one.mean == 3.0 and one.n == 1 and math.isnan(one.low)


def test_gate_rules_from_flags_and_yaml(tmp_path):
    assert parse_rule("psnr:0.5") == GateRule("psnr", 0.5, False)
    assert parse_rule("temporal_sampson_px:0.1:ci").require_ci
    for bad in ("psnr", "psnr:x", "nosuch:1", "psnr:-1"):
        with pytest.raises((ValueError, KeyError)):
            parse_rule(bad)
    path = tmp_path / "gate.yaml"
    path.write_text("promote_to: approved\nrules:\n  - {metric: psnr, margin: 0.5}\n")
    assert load_gate(path) == GateConfig([GateRule("psnr", 0.5)], "approved")
    with pytest.raises(ValueError, match="promote_to"):
        GateConfig([GateRule("psnr")], "deprecated")


def test_charts_are_plain_svg_and_label_unmeasured_values():
    spec = stats.metric_spec("psnr")
    svg = bar_chart_svg(
        spec, [("base", {"mean": 20.0, "low": 19.0, "high": 21.0}), ("a@1", {"mean": math.inf})]
    )
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "∞" in svg and "<script" not in svg
    curve = line_chart_svg("PSNR vs clips", "clips", "dB", {"a": [(1, 20, 19, 21), (4, 22, 21, 23)]})
    assert "<polyline" in curve and "<polygon" in curve


def test_side_by_side_tiles_at_one_height():
    a = np.zeros((3, 32, 48, 3), np.uint8)
    b = np.full((2, 16, 16, 3), 255, np.uint8)
    tiled = side_by_side([("real", a), ("base", b)])
    assert tiled.shape[0] == 3 and tiled.shape[2] == 48 + 4 + 32 and tiled.dtype == np.uint8


def _with_still(results: EvalResults) -> EvalResults:
    """``results`` plus a still baseline row (one record per clip, seed 0) scoring 1 dB under the base."""
    results.rows.insert(1, RowInfo(STILL_ROW, "baseline"))
    for c, clip in enumerate(("c0", "c1", "c2")):
        psnr = 19.05 + c + (0.3 if c == 2 else 0.0)  # base clip means are 20.05 + c
        results.samples.append(
            SampleRecord(STILL_ROW, clip, 0, "g", "/cam", {"psnr": psnr, "psnr_moving": 12.0 + c})
        )
    for sample in results.samples:
        sample.metrics.setdefault("psnr_moving", 15.0)
    results.real[0].metrics["moving_fraction"] = 0.25
    results.settings["motion_threshold"] = 12
    return results


def test_still_row_is_one_unit_per_clip_with_a_delta_vs_base():
    results = _with_still(_results())
    summary = stats.summarize(results)
    still = summary["psnr"][STILL_ROW]
    assert still["n"] == 3 and still["mean"] == pytest.approx(np.mean([19.05, 20.05, 21.35]))
    # row minus base, paired by clip: -1, -1, -0.7
    assert still["delta"]["mean"] == pytest.approx(-0.9) and still["delta"]["n"] == 3
    assert "delta" not in summary["psnr"][BASE_ROW]
    assert summary["psnr_moving"][STILL_ROW]["mean"] == pytest.approx(13.0)
    assert list(summary["moving_fraction"]) == [REAL_ROW]  # the real clips only, no model row
    assert summary["moving_fraction"][REAL_ROW]["mean"] == 0.25


def test_gate_judges_adapters_only_and_never_a_property_of_the_real_clips():
    results = _with_still(_results())
    results.summary = stats.summarize(results)
    gate = GateConfig([GateRule("psnr", 0.5)])
    assert evaluate_gate(results, "a@1", gate).passed  # the adapter is 1 dB above the base on every clip
    for row in (STILL_ROW, BASE_ROW):
        with pytest.raises(ValueError, match="adapter rows only"):
            evaluate_gate(results, row, gate)
    with pytest.raises(ValueError, match="real clips"):
        GateRule("moving_fraction", 0.1)


def test_report_and_cli_table_show_the_still_row_and_moving_pixels():
    from cosmos_ros.evaluation.cli import summary_table

    results = _with_still(_results())
    results.summary = stats.summarize(results)
    html = render_html(results, [])
    assert "<td>still <span class='note'>(baseline)</span></td>" in html
    assert "PSNR on moving pixels" in html and "25.0% of the frame" in html
    assert 'id="moving_fraction"' in html and "a property of the real clips" in html
    table = summary_table(results)
    header = table[0].split()
    assert header == ["metric", REAL_ROW, BASE_ROW, STILL_ROW, "a@1"]
    psnr_line = next(line for line in table if line.split()[0] == "psnr")
    assert "(-0.9)" in psnr_line and "(+1)" in psnr_line  # still and adapter deltas vs base


def test_metrics_json_written_before_the_still_row_reads_summarizes_and_reports(tmp_path):
    from cosmos_ros.evaluation.cli import summary_table

    old = _results().to_dict()  # no still row, no psnr_moving, no moving_fraction, no motion_threshold
    old["summary"] = {}
    (tmp_path / "metrics.json").write_text(json.dumps(old))
    back = read_results(tmp_path)
    assert back.row_names() == [BASE_ROW, "a@1"]
    back.summary = stats.summarize(back)
    assert STILL_ROW not in back.summary["psnr"] and "psnr_moving" not in back.summary
    html = render_html(back, [])
    assert "still" not in html.lower() and "moving pixels" not in html
    assert summary_table(back)[0].split() == ["metric", REAL_ROW, BASE_ROW, "a@1"]


def test_an_unknown_row_kind_is_refused_by_name(tmp_path):
    data = _with_still(_results()).to_dict()
    assert [r["kind"] for r in data["rows"]] == ["base", "baseline", "adapter"]
    write_results(tmp_path, EvalResults.from_dict(data))  # the new kind reads back
    data["rows"][1]["kind"] = "oracle"
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    with pytest.raises(ResultsFormatError, match=r"rows\[1\]\.kind 'oracle'"):
        read_results(tmp_path)
