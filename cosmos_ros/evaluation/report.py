"""report/index.html: tables with confidence intervals, inline SVG bar charts and a video grid.

The report is one self-contained HTML file (no scripts, no web fonts, no remote assets) beside a
``videos/`` folder of side-by-side mp4 files (real | base | each adapter, H.264, browser-playable).
Every file the HTML names is written before the HTML itself, so a report never links to nothing.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cosmos_ros.atomic import atomic_write_text
from cosmos_ros.evaluation.results import BASE_ROW, REAL_ROW, STILL_ROW, EvalResults, read_results
from cosmos_ros.evaluation.stats import CI_METHOD, METRICS, MetricSpec

REPORT_DIR = "report"
_PALETTE = ("#6b7280", "#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04")
_ROW_COLOURS = {REAL_ROW: "#111827", BASE_ROW: _PALETTE[0], STILL_ROW: "#a3a3a3"}


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}"


def _colour(row: str, index: int) -> str:
    """Fixed colours for real/base/still; adapters by their position (neutral hues, not good/bad colours)."""
    adapter_palette = ("#2563eb", "#9333ea", "#0891b2", "#ca8a04", "#db2777", "#4d7c0f")
    return _ROW_COLOURS.get(row, adapter_palette[index % len(adapter_palette)])


# --------------------------------------------------------------------------------------------------
# SVG charts


def bar_chart_svg(spec: MetricSpec, entries: Sequence[tuple[str, dict]], width: int = 520) -> str:
    """Horizontal bars of the mean per row with 95 % interval whiskers; infinite/NaN bars are labelled."""
    bar_h, gap, left, right, top = 22, 8, 170, 90, 26
    height = top + len(entries) * (bar_h + gap) + 24
    finite = [
        v for _, e in entries for v in (e.get("mean"), e.get("low"), e.get("high"))
        if isinstance(v, float | int) and math.isfinite(v)
    ]  # fmt: skip
    lo = min([0.0, *finite])
    hi = max([0.0, *finite]) or 1.0
    span = (hi - lo) or 1.0
    plot_w = width - left - right

    def x(v: float) -> float:
        return left + (v - lo) / span * plot_w

    unit = f" ({spec.unit})" if spec.unit else ""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(spec.label)} bar chart">',
        f'<text x="4" y="16" font-size="13" font-weight="bold">{_esc(spec.label + unit)}, '
        f"{_direction(spec)}</text>",
        f'<line x1="{x(0):.1f}" y1="{top - 4}" x2="{x(0):.1f}" y2="{height - 20}" stroke="#9ca3af"/>',
    ]
    adapters = [row for row, _ in entries if row not in _ROW_COLOURS]
    for i, (row, entry) in enumerate(entries):
        y = top + i * (bar_h + gap)
        colour = _colour(row, adapters.index(row) if row in adapters else 0)
        mean = entry.get("mean", math.nan)
        parts.append(
            f'<text x="{left - 6}" y="{y + bar_h * 0.7:.1f}" font-size="12" text-anchor="end">'
            f"{_esc(row)}</text>"
        )
        if isinstance(mean, float | int) and math.isfinite(mean):
            x0, x1 = sorted((x(0), x(mean)))
            parts.append(
                f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="{bar_h}" '
                f'fill="{colour}" opacity="0.85"/>'
            )
            low, high = entry.get("low", math.nan), entry.get("high", math.nan)
            if math.isfinite(low) and math.isfinite(high):
                cy = y + bar_h / 2
                parts.append(
                    f'<path d="M{x(low):.1f},{cy - 6}v12M{x(low):.1f},{cy}H{x(high):.1f}'
                    f'M{x(high):.1f},{cy - 6}v12" '
                    'stroke="#111827" stroke-width="1.5" fill="none"/>'
                )
        parts.append(
            f'<text x="{width - right + 6}" y="{y + bar_h * 0.7:.1f}" font-size="12">'
            f"{_esc(_fmt(mean))}</text>"
        )
    parts.append(
        f'<text x="{left}" y="{height - 6}" font-size="10" fill="#6b7280">{_esc(_fmt(lo))}</text>'
        f'<text x="{left + plot_w}" y="{height - 6}" font-size="10" fill="#6b7280" text-anchor="end">'
        f"{_esc(_fmt(hi))}</text></svg>"
    )
    return "".join(parts)


def line_chart_svg(
    title: str,
    x_label: str,
    y_label: str,
    series: dict[str, list[tuple[float, float, float, float]]],
    width: int = 560,
    height: int = 320,
) -> str:
    """Lines of (x, mean, low, high) points per series, with shaded 95 % bands (learning curves)."""
    left, right, top, bottom = 64, 130, 30, 46
    points = [p for pts in series.values() for p in pts]
    xs = [p[0] for p in points]
    ys = [v for p in points for v in p[1:] if math.isfinite(v)]
    if not xs or not ys:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40">'
            f'<text x="4" y="20">{_esc(title)}: no data</text></svg>'
        )
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    x_span, y_span = (x_hi - x_lo) or 1.0, (y_hi - y_lo) or 1.0
    y_lo, y_hi = y_lo - 0.05 * y_span, y_hi + 0.05 * y_span
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(v: float) -> float:
        return left + (v - x_lo) / x_span * plot_w

    def py(v: float) -> float:
        return top + (1 - (v - y_lo) / (y_hi - y_lo)) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{_esc(title)}">',
        f'<text x="4" y="18" font-size="13" font-weight="bold">{_esc(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#9ca3af"/>',
        f'<text x="{left + plot_w / 2}" y="{height - 8}" font-size="12" text-anchor="middle">'
        f"{_esc(x_label)}</text>",
        f'<text x="14" y="{top + plot_h / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">{_esc(y_label)}</text>',
    ]
    for v in sorted(set(xs)):
        parts.append(
            f'<text x="{px(v):.1f}" y="{top + plot_h + 16}" font-size="10" text-anchor="middle">'
            f"{_fmt(v, 0)}</text>"
        )
    for v in (y_lo, (y_lo + y_hi) / 2, y_hi):
        parts.append(
            f'<text x="{left - 4}" y="{py(v) + 4:.1f}" font-size="10" text-anchor="end">{_fmt(v)}</text>'
        )
    for i, (name, pts) in enumerate(series.items()):
        colour = _colour(name, i)
        pts = sorted(pts)
        band = [(p[0], p[2], p[3]) for p in pts if math.isfinite(p[2]) and math.isfinite(p[3])]
        if len(band) >= 2:
            upper = " ".join(f"{px(b[0]):.1f},{py(b[2]):.1f}" for b in band)
            lower = " ".join(f"{px(b[0]):.1f},{py(b[1]):.1f}" for b in reversed(band))
            parts.append(f'<polygon points="{upper} {lower}" fill="{colour}" opacity="0.15"/>')
        line = [p for p in pts if math.isfinite(p[1])]
        coords = " ".join(f"{px(p[0]):.1f},{py(p[1]):.1f}" for p in line)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for p in line:
            parts.append(f'<circle cx="{px(p[0]):.1f}" cy="{py(p[1]):.1f}" r="3" fill="{colour}"/>')
        parts.append(
            f'<text x="{left + plot_w + 8}" y="{top + 14 + 16 * i}" font-size="12" fill="{colour}">'
            f"{_esc(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------------------------------
# Side-by-side videos


def side_by_side(videos: Sequence[tuple[str, np.ndarray]], height: int | None = None) -> np.ndarray:
    """Tile labelled videos left to right at one height; shorter ones hold their last frame."""
    import cv2

    height = height or max(v.shape[1] for _, v in videos)
    length = max(v.shape[0] for _, v in videos)
    label_h = max(16, height // 12)
    tiles = []
    for label, video in videos:
        scale = height / video.shape[1]
        width = max(2, round(video.shape[2] * scale))
        resized = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in video])
        if resized.shape[0] < length:
            resized = np.concatenate([resized, np.repeat(resized[-1:], length - resized.shape[0], axis=0)])
        header = np.full((length, label_h, width, 3), 255, np.uint8)
        font_scale = label_h / 40
        for t in range(length):
            cv2.putText(
                header[t], label[:40], (3, int(label_h * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                (17, 24, 39), 1, cv2.LINE_AA,
            )  # fmt: skip
        tiles.append(np.concatenate([header, resized], axis=1))
        tiles.append(np.full((length, height + label_h, 4, 3), 255, np.uint8))
    return np.ascontiguousarray(np.concatenate(tiles[:-1], axis=2))


def _grid_videos(
    results: EvalResults, results_dir: Path, out_dir: Path
) -> list[tuple[str, int, str, list[str]]]:
    """Write one side-by-side mp4 per clip (first seed); returns (clip, seed, relpath, labels)."""
    from cosmos_ros.media.video import read_video, write_video

    if not results.samples:
        return []
    seed = min(s.seed for s in results.samples)
    real_by_clip = {r.clip_id: r for r in results.real}
    fps = float(results.settings.get("fps") or 16.0)
    out = []
    for clip_id in sorted({s.clip_id for s in results.samples}):
        cells: list[tuple[str, np.ndarray]] = []
        real = real_by_clip.get(clip_id)
        if real and real.video and (results_dir / real.video).is_file():
            cells.append(("real", read_video(results_dir / real.video)[0]))
        for row in results.row_names():
            sample = next(
                (s for s in results.samples if s.row == row and s.clip_id == clip_id and s.seed == seed), None
            )
            if sample and sample.video and (results_dir / sample.video).is_file():
                cells.append((row, read_video(results_dir / sample.video)[0]))
        if not cells:
            continue
        rel = f"videos/{_safe(clip_id)}_seed{seed}.mp4"
        write_video(out_dir / rel, side_by_side(cells), fps)
        out.append((clip_id, seed, rel, [label for label, _ in cells]))
    return out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# --------------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#111827;
  max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #e5e7eb}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #e5e7eb;padding:4px 8px;font-size:13px}
th{background:#f3f4f6;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.metric{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}.note{color:#6b7280;font-size:12px}
.good{color:#15803d}.bad{color:#b91c1c}video{width:100%;max-width:1100px;border:1px solid #e5e7eb}
code{background:#f3f4f6;padding:0 3px}
"""


def _direction(spec: MetricSpec) -> str:
    """How to read a metric: which way is better, or that it describes the real clips only."""
    if spec.source == "real":
        return "a property of the real clips, not a score"
    return "higher is better" if spec.higher_is_better else "lower is better"


def _metric_section(
    spec: MetricSpec, per_row: dict[str, dict], baselines: frozenset[str] = frozenset()
) -> str:
    """One metric's table and chart; ``baselines``' deltas are not coloured (beating the base is not
    good news for a baseline: it is bad news for the base)."""
    rows = []
    for row, entry in per_row.items():
        delta = entry.get("delta")
        delta_cell = "–"
        if delta:
            d = delta["mean"]
            cls = ""
            if math.isfinite(d) and d != 0 and row not in baselines:
                cls = "good" if (d > 0) == spec.higher_is_better else "bad"
            delta_cell = f'<span class="{cls}">{_fmt(d)}</span> [{_fmt(delta["low"])}, {_fmt(delta["high"])}]'
        label = f"{_esc(row)} <span class='note'>(baseline)</span>" if row in baselines else _esc(row)
        rows.append(
            f"<tr><td>{label}</td><td class='num'>{_fmt(entry['mean'])}</td>"
            f"<td class='num'>[{_fmt(entry['low'])}, {_fmt(entry['high'])}]</td>"
            f"<td class='num'>{entry['n']}</td><td class='num'>{entry.get('n_missing', 0)}</td>"
            f"<td class='num'>{delta_cell}</td></tr>"
        )
    unit = f" ({spec.unit})" if spec.unit else ""
    table = (
        "<table><tr><th>row</th><th>mean</th><th>95% CI</th><th>clips</th><th>unmeasured</th>"
        f"<th>Δ vs base [95% CI]</th></tr>{''.join(rows)}</table>"
    )
    chart = bar_chart_svg(spec, list(per_row.items()))
    return (
        f'<section id="{spec.key}"><h3>{_esc(spec.label + unit)}</h3>'
        f'<p class="note">{_esc(spec.description)}; {_direction(spec)}.</p>'
        f'<div class="metric"><div>{table}</div><div>{chart}</div></div></section>'
    )


def _notes_table(results: EvalResults) -> str:
    """Why values are missing or partial (e.g. too few SIFT matches), counted per row and reason."""
    counts: dict[tuple[str, str, str], int] = {}
    for item in [*results.samples, *results.real, *results.cross_view]:
        row = getattr(item, "row", REAL_ROW)
        for key, reason in item.notes.items():
            counts[(row, key, reason)] = counts.get((row, key, reason), 0) + 1
    if not counts:
        return ""
    rows = "".join(
        f"<tr><td>{_esc(row)}</td><td>{_esc(key)}</td><td class='num'>{n}</td><td>{_esc(reason)}</td></tr>"
        for (row, key, reason), n in sorted(counts.items())
    )
    return (
        "<h2>Notes</h2><p class='note'>Why some values are unmeasured (NaN) or partial.</p>"
        f"<table><tr><th>row</th><th>metric</th><th>videos</th><th>reason</th></tr>{rows}</table>"
    )


def _still_note(results: EvalResults) -> str:
    """What the still row is, when the results have one (files written before it existed do not)."""
    if STILL_ROW not in results.row_names():
        return ""
    return (
        f"The row <b>{STILL_ROW}</b> is a baseline, not a model: the last conditioning frame repeated. "
        "Its Δ is still − base, so a positive PSNR Δ means the base predicts worse than a frozen frame; "
        "a frozen frame trivially scores perfect temporal stability (no flicker, no motion). "
    )


def _moving_note(results: EvalResults) -> str:
    """How PSNR on moving pixels was taken, when it was (files written before it existed lack it)."""
    if "psnr_moving" not in results.summary:
        return ""
    threshold = results.settings.get("motion_threshold", "–")
    fraction = results.summary.get("moving_fraction", {}).get(REAL_ROW, {}).get("mean", math.nan)
    return (
        "PSNR on moving pixels is taken only over the pixels that move in the real clip (a change above "
        f"<code>{_esc(threshold)}</code> grey levels from the last conditioning frame): on average "
        f"{_esc(_fmt(100 * fraction, 1))}% of the frame. "
    )


def render_html(
    results: EvalResults, grid: list[tuple[str, int, str, list[str]]], extra_html: str = ""
) -> str:
    """The report page for ``results`` (``grid``: side-by-side videos relative to the page)."""
    settings_rows = "".join(
        f"<tr><th>{_esc(k)}</th><td><code>{_esc(v)}</code></td></tr>"
        for k, v in sorted(results.settings.items())
    )
    model_rows = "".join(
        f"<tr><td>{_esc(r.name)}</td><td>{_esc(r.kind)}</td><td><code>{_esc(r.adapter_ref or '')}</code></td>"
        f"<td><code>{_esc(r.fingerprint or '')}</code></td></tr>"
        for r in results.rows
    )
    order = [REAL_ROW, *results.row_names()]  # real, base, still (files since it exists), adapters
    baselines = frozenset(r.name for r in results.rows if r.kind == "baseline")
    sections = [
        _metric_section(
            spec,
            {r: results.summary[spec.key][r] for r in order if r in results.summary[spec.key]},
            baselines,
        )
        for spec in METRICS
        if spec.key in results.summary
    ]
    lpips = results.lpips or {}
    lpips_state = "computed" if lpips.get("available") else "not computed"
    lpips_note = f"LPIPS: {lpips_state} ({_esc(lpips.get('reason', 'unknown'))})."
    notes = _notes_table(results)
    videos = "".join(
        f"<figure><figcaption>{_esc(clip)} · seed {seed} · {_esc(' | '.join(labels))}</figcaption>"
        f'<video src="{_esc(rel)}" controls loop muted playsinline preload="metadata"></video></figure>'
        for clip, seed, rel, labels in grid
    )
    dataset = results.dataset
    still_video_note = (
        f" The {STILL_ROW} baseline has no video: it is the real clip's last conditioning frame."
        if STILL_ROW in results.row_names()
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cosmos-ros evaluation</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>cosmos-ros evaluation</h1>
<p>Dataset <code>{_esc(dataset.get("path", ""))}</code>, split <b>{_esc(dataset.get("split", ""))}</b>,
{len(dataset.get("clip_ids", []))} clips,
manifest sha256 <code>{_esc(dataset.get("manifest_sha256", ""))}</code>.
Base fingerprint <code>{_esc(results.base.get("fingerprint", ""))}</code>. Code version
<code>{_esc(results.code_version)}</code>.</p>
<p class="note">Confidence intervals: {_esc(CI_METHOD)}. Fidelity metrics compare the generated continuation
(conditioning frames excluded) with the real one. Rows named <b>real</b> are the same statistics of the real
clips, for reference. {_still_note(results)}{_moving_note(results)}{lpips_note}</p>
<h2>Models</h2>
<table><tr><th>row</th><th>kind</th><th>adapter</th><th>fingerprint</th></tr>{model_rows}</table>
<h2>Metrics</h2>
{"".join(sections) or "<p>No metrics.</p>"}
{notes}
{extra_html}
<h2>Videos</h2>
<p class="note">Side by side: real | base | each adapter (first seed of each clip).{still_video_note}</p>
{videos or "<p>No videos.</p>"}
<h2>Settings</h2>
<table>{settings_rows}</table>
</body></html>
"""


def write_report(
    results_dir: str | os.PathLike[str], results: EvalResults | None = None, extra_html: str = ""
) -> Path:
    """Write ``results_dir/report/index.html`` (and its videos) for the metrics.json in ``results_dir``."""
    results_dir = Path(results_dir)
    results = results or read_results(results_dir)
    out_dir = results_dir / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = _grid_videos(results, results_dir, out_dir)
    return atomic_write_text(out_dir / "index.html", render_html(results, grid, extra_html))
