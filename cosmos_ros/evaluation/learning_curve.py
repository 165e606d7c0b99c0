"""Data-sufficiency study: train on nested subsets of the training clips, evaluate each, plot vs. clips.

The training clips are put in one seeded order and each fraction takes a prefix of it, so every
smaller subset is contained in the larger ones (nested): the curve then shows what *more* data
buys, not which clips happened to be drawn. Each subset is a dataset folder of its own (hard links
to the original videos, written through the dataset format module) holding the subset's training
clips plus the original ``val`` clips; the held-out split is never trained on. All adapters are then
evaluated in one protocol run against the base on the original dataset's held-out split.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_ros.atomic import atomic_write_text
from cosmos_ros.evaluation.protocol import EvalConfig, run_evaluation
from cosmos_ros.evaluation.results import BASE_ROW, STILL_ROW, EvalResults
from cosmos_ros.evaluation.stats import METRICS
from cosmos_ros.progress import ProgressCallback


def subset_sizes(total: int, fractions: list[float]) -> list[int]:
    """Clip counts for ``fractions`` of ``total`` (at least 1, rounded up, duplicates dropped, sorted)."""
    if total < 1:
        raise ValueError("the dataset has no training clips")
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad or not fractions:
        raise ValueError(f"fractions must be in (0, 1], got {fractions}")
    return sorted({max(1, math.ceil(f * total - 1e-9)) for f in fractions})


def nested_order(clip_ids: list[str], seed: int) -> list[str]:
    """A seeded permutation of ``clip_ids``; subsets are its prefixes."""
    rng = np.random.default_rng(seed)
    ordered = sorted(clip_ids)
    return [ordered[i] for i in rng.permutation(len(ordered))]


def write_subset(dataset: Any, keep: set[str], folder: Path) -> Path:
    """A dataset folder with the clips in ``keep`` (hard links, copies across file systems)."""
    from cosmos_ros.bag_tools.dataset_format import DatasetInfo, write_dataset

    records = [c for c in dataset.clips if c.clip_id in keep]
    if folder.exists():
        shutil.rmtree(folder)
    for record in records:
        for rel in (record.video, record.meta):
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(dataset.root / rel, target)
            except OSError:
                shutil.copy2(dataset.root / rel, target)
    info = DatasetInfo(
        tool="cosmos-ros eval learning-curve",
        parameters={"source_dataset": str(dataset.root), "source_manifest_sha256": dataset.manifest_sha256},
    )
    write_dataset(folder, records, info)
    return folder


def run_learning_curve(
    config: EvalConfig,
    train_config: str,
    fractions: list[float],
    *,
    overrides: list[str] | tuple[str, ...] = (),
    subset_seed: int = 0,
    progress: ProgressCallback | None = None,
) -> Path:
    """Train one adapter per subset, evaluate all, write the curve report; returns its index.html."""
    from cosmos_ros.bag_tools.dataset_format import load_dataset
    from cosmos_ros.evaluation.report import write_report
    from cosmos_ros.training.config import load_config
    from cosmos_ros.training.loop import train

    dataset = load_dataset(config.dataset)
    train_ids = nested_order([c.clip_id for c in dataset.split("train")], subset_seed)
    val_ids = {c.clip_id for c in dataset.split("val")}
    sizes = subset_sizes(len(train_ids), fractions)
    out = Path(config.out)
    adapters: list[str] = []
    sizes_by_row: dict[str, int] = {}
    for size in sizes:
        name = f"clips_{size:04d}"
        subset = write_subset(dataset, set(train_ids[:size]) | val_ids, out / "subsets" / name)
        cfg = load_config(
            train_config,
            [
                *overrides,
                f"base_model={config.model}",
                f"dataset={subset}",
                f"output_dir={out / 'runs' / name}",
            ],
        )
        result = train(cfg, progress=progress)
        if result.adapter_dir is None:
            raise RuntimeError(f"training on {size} clips wrote no adapter folder ({out / 'runs' / name})")
        adapters.append(str(result.adapter_dir))
        sizes_by_row[name] = size
    eval_config = EvalConfig(**{**config.__dict__, "out": str(out / "eval"), "adapters": adapters})
    results = run_evaluation(eval_config, progress=progress)
    curve = curve_points(results, sizes_by_row)
    atomic_write_text(
        out / "learning_curve.json",
        json.dumps({"subset_seed": subset_seed, "fractions": fractions, "sizes": sizes_by_row,
                    "train_config": train_config, "overrides": list(overrides), "curve": curve},
                   indent=1, sort_keys=True, allow_nan=False, default=str) + "\n",
    )  # fmt: skip
    return write_report(out / "eval", results, extra_html=curve_html(curve))


def curve_points(results: EvalResults, sizes_by_row: dict[str, int]) -> dict[str, dict[str, list[list[Any]]]]:
    """``{metric: {"adapter": [[clips, mean, low, high], ...], "base": [...], "still": [...]}}``.

    None for unmeasured values. ``base`` and ``still`` (the last conditioning frame repeated; absent
    from results written before it existed) are flat reference lines at the adapters' clip counts.
    """

    def clean(v: Any) -> Any:
        return v if isinstance(v, float | int) and math.isfinite(v) else None

    curve: dict[str, dict[str, list[list[Any]]]] = {}
    for metric, per_row in results.summary.items():
        points = [
            [size, clean(per_row[row]["mean"]), clean(per_row[row]["low"]), clean(per_row[row]["high"])]
            for row, size in sorted(sizes_by_row.items(), key=lambda kv: kv[1])
            if row in per_row
        ]
        if not points:
            continue
        entry = {"adapter": points}
        for reference in (BASE_ROW, STILL_ROW):
            if reference in per_row:
                ref = per_row[reference]
                entry[reference] = [
                    [p[0], clean(ref["mean"]), clean(ref["low"]), clean(ref["high"])] for p in points
                ]
        curve[metric] = entry
    return curve


def curve_html(curve: dict[str, dict[str, list[list[Any]]]]) -> str:
    from cosmos_ros.evaluation.report import line_chart_svg

    def series(points: list[list[Any]]) -> list[tuple[float, float, float, float]]:
        return [tuple(math.nan if v is None else float(v) for v in p) for p in points]  # type: ignore[misc]

    charts = []
    for spec in METRICS:
        if spec.key not in curve:
            continue
        data = {name: series(points) for name, points in curve[spec.key].items()}
        unit = f" ({spec.unit})" if spec.unit else ""
        charts.append(
            line_chart_svg(f"{spec.label} vs. training clips", "training clips", spec.label + unit, data)
        )
    return (
        "<h2>Learning curve</h2><p class='note'>Adapters trained on nested subsets of the training clips, "
        "evaluated on the held-out split; shaded bands are 95% intervals; the base line is the same model "
        "without an adapter, the still line the last conditioning frame repeated.</p>"
        + "".join(f"<div>{c}</div>" for c in charts)
    )
