"""The evaluation protocol: generate for every held-out clip with the base and each adapter, measure.

For each clip of the chosen split: its first ``conditioning_frames`` frames and its prompt condition
a prediction of ``num_frames`` frames, once per seed, by the base model (always, the reference row)
and by each adapter. The prediction's frames after the conditioning frames are compared with the
real clip's frames at the same indices (both fitted to the prediction size the same way); the real
window gets the same temporal and geometric statistics, plus the share of its pixels that move (the
pixels ``psnr_moving`` is taken over). Each clip also gets the ``still`` baseline row: the last
conditioning frame repeated, measured exactly like a prediction (once, as seed 0: it is deterministic
and needs no model). Clip groups with several cameras also get cross-view Sampson errors (real and
generated). Everything lands in metrics.json (results.py).

Determinism: clips, rows and seeds are processed in sorted order, the runtime is seeded per
prediction and every metric is deterministic, so the same inputs give the same numbers.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_ros.evaluation import metrics as m
from cosmos_ros.evaluation.results import (
    BASE_ROW,
    REAL_ROW,
    RESERVED_ROWS,
    STILL_ROW,
    CrossViewRecord,
    EvalResults,
    RealRecord,
    RowInfo,
    SampleRecord,
)
from cosmos_ros.progress import ProgressCallback, Stopwatch

log = logging.getLogger(__name__)

#: The seed the deterministic still baseline is stored under (one record per clip).
STILL_SEED = 0


@dataclass
class EvalConfig:
    """What to evaluate and how; every field is recorded in metrics.json's ``settings``."""

    dataset: str
    model: str
    out: str
    adapters: list[str] = field(default_factory=list)
    registry: str | None = None
    split: str = "test"
    seeds: int = 3
    preset: str = "full"
    num_frames: int | None = None
    steps: int | None = None
    height: int | None = None
    width: int | None = None
    conditioning_frames: int = 1
    fit: str = "crop"
    max_clips: int | None = None
    device: str = "cpu"
    dtype: str = "float32"
    safety_checker: str = "auto"
    sampson: m.SampsonSettings = field(default_factory=m.SampsonSettings)
    #: Grey levels a real pixel must change by to count as moving (psnr_moving); default
    #: metrics.MOTION_THRESHOLD (12), above codec noise.
    motion_threshold: int = m.MOTION_THRESHOLD

    def settings_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sampson"] = self.sampson.to_dict()
        for volatile in ("out", "dataset", "model", "registry"):
            data.pop(volatile)
        return data


# --------------------------------------------------------------------------------------------------
# Pure measuring steps (no model): also used by tests and the learning curve


def measure_generated(
    real_window: np.ndarray,
    generated: np.ndarray,
    conditioning_frames: int,
    sampson: m.SampsonSettings,
    motion_threshold: int = m.MOTION_THRESHOLD,
) -> tuple[dict[str, float], dict[str, list[float]], dict[str, str]]:
    """Metrics of one generated video against the real window: ``(means, per-frame series, notes)``.

    ``motion_threshold`` (default :data:`~cosmos_ros.evaluation.metrics.MOTION_THRESHOLD`) picks the
    real clip's moving pixels for ``psnr_moving``.
    """
    notes: dict[str, str] = {}
    length = min(len(real_window), len(generated))
    if length < len(generated):
        notes["frames"] = f"real clip has {len(real_window)} frames; compared the first {length}"
    real_cont = real_window[conditioning_frames:length]
    gen_cont = generated[conditioning_frames:length]
    if len(gen_cont) == 0:
        raise ValueError(
            f"nothing to compare: {length} frames with {conditioning_frames} conditioning frame(s); "
            "use more frames (num_frames) or fewer conditioning frames"
        )
    psnr = m.psnr_per_frame(real_cont, gen_cont)
    ssim = m.ssim_per_frame(real_cont, gen_cont)
    values: dict[str, float] = {"psnr": m.finite_mean(psnr), "ssim": float(ssim.mean())}
    moving = m.moving_mask(real_window[:length], conditioning_frames, motion_threshold)
    values["psnr_moving"] = m.psnr_masked(real_cont, gen_cont, moving)
    if not moving.any():
        notes["psnr_moving"] = (
            f"the real clip has no moving pixels (none changes by more than {motion_threshold} grey levels)"
        )
    series: dict[str, list[float]] = {"psnr": psnr.tolist(), "ssim": ssim.tolist()}
    if m.lpips_availability().available:
        lp = m.lpips_per_frame(real_cont, gen_cont)
        values["lpips"] = float(lp.mean())
        series["lpips"] = lp.tolist()
    values.update(m.temporal_stability(gen_cont))
    sampson = m.temporal_sampson_error(gen_cont, sampson)
    values["temporal_sampson_px"] = sampson.mean_px
    values["temporal_sampson_median_px"] = sampson.median_px
    series["temporal_sampson_px"] = sampson.per_pair_mean_px
    if sampson.reason:
        notes["temporal_sampson"] = sampson.reason
    return values, series, notes


def measure_real(
    real_window: np.ndarray,
    conditioning_frames: int,
    sampson: m.SampsonSettings,
    motion_threshold: int = m.MOTION_THRESHOLD,
) -> tuple[dict, dict]:
    """Temporal and geometric statistics of the real continuation window: ``(values, notes)``.

    ``moving_fraction`` is the share of the frame that moves (``motion_threshold`` as in
    :func:`measure_generated`), so a reader knows how many pixels ``psnr_moving`` rests on.
    """
    cont = real_window[conditioning_frames:]
    values = m.temporal_stability(cont)
    values["moving_fraction"] = float(
        m.moving_mask(real_window, conditioning_frames, motion_threshold).mean()
    )
    result = m.temporal_sampson_error(cont, sampson)
    values["temporal_sampson_px"] = result.mean_px
    values["temporal_sampson_median_px"] = result.median_px
    return values, ({"temporal_sampson": result.reason} if result.reason else {})


def cross_view_metrics(
    view_a: np.ndarray, view_b: np.ndarray, sampson: m.SampsonSettings
) -> tuple[dict, dict]:
    length = min(len(view_a), len(view_b))
    result = m.cross_view_sampson_error(view_a[:length], view_b[:length], sampson)
    values = {
        "mean_px": result.mean_px,
        "median_px": result.median_px,
        "num_matches": float(result.num_matches),
    }
    return values, ({"cross_view_sampson": result.reason} if result.reason else {})


def real_window(dataset: Any, clip: Any, num_frames: int, height: int, width: int, fit: str) -> np.ndarray:
    """The clip's first ``num_frames`` frames fitted to the prediction size (as the runtime fits them)."""
    from cosmos_ros.media.frame_fit import fit_frame
    from cosmos_ros.media.video import read_video

    frames, _ = read_video(dataset.video_path(clip), max_frames=num_frames)
    return np.stack([fit_frame(f, height, width, fit) for f in frames])


def view_name(clip: Any) -> str:
    """The camera of a clip inside its group: its topic, else its clip id."""
    return clip.topic or clip.clip_id


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# --------------------------------------------------------------------------------------------------
# The runner


@dataclass
class _Row:
    info: RowInfo
    runtime_name: str | None  # name the adapter was loaded under; None for the base


def _adapter_label(path: Path) -> str:
    """Row name of an adapter given as a path: the folder name, or the run folder for ``<run>/adapter``."""
    if path.is_file():
        return path.stem
    return path.parent.name if path.name == "adapter" and path.parent.name else path.name


def _load_rows(rt: Any, config: EvalConfig) -> list[_Row]:
    rows = [_Row(RowInfo(BASE_ROW, "base", rt.fingerprint), None)]
    registry = None
    for index, ref in enumerate(config.adapters):
        path = Path(ref).expanduser()
        runtime_name = f"eval{index}"
        if path.exists():
            from cosmos_ros.model.adapter_folder import read_adapter_metadata

            meta = read_adapter_metadata(path) if path.is_dir() else None
            staged = rt.load_adapter(runtime_name, path, adapter_id=path.name)
            info = RowInfo(
                name=_adapter_label(path),
                kind="adapter",
                fingerprint=getattr(staged, "sha256", None) or getattr(staged, "adapter_id", None),
                adapter_ref=None,
                adapter_path=str(path),
                adapter_metadata=meta.to_dict() if meta else {},
            )
        else:
            if registry is None:
                if config.registry is None:
                    raise ValueError(
                        f"adapter {ref!r} is not a folder or file, and no registry was given to resolve it"
                    )
                from cosmos_ros.registry import open_registry

                registry = open_registry(config.registry)
            loadable = registry.resolve_for_loading(
                ref, base_fingerprint=rt.fingerprint, allow_unapproved=True
            )
            record = loadable.record
            with loadable.verified_file() as weights:  # the bytes whose hash was just checked
                rt.load_adapter(runtime_name, weights, adapter_id=record.adapter_id)
            info = RowInfo(
                name=record.adapter_id,
                kind="adapter",
                fingerprint=record.artifact_sha256,
                adapter_ref=record.adapter_id,
                adapter_metadata={
                    "status": record.status,
                    "adapter_type": record.adapter_type,
                    "rank": record.rank,
                    "base_fingerprint": record.base_fingerprint,
                    "dataset_manifest_sha256": record.dataset_manifest_sha256,
                },
            )
        if info.name in RESERVED_ROWS:
            raise ValueError(
                f"adapter {ref!r} would be row {info.name!r}, a name kept for the evaluation's own rows"
            )
        if any(r.info.name == info.name for r in rows):
            raise ValueError(f"adapter {info.name!r} is listed twice")
        rows.append(_Row(info, runtime_name))
    if registry is not None:
        registry.close()
    return rows


def run_evaluation(
    config: EvalConfig, progress: ProgressCallback | None = None, runtime: Any | None = None
) -> EvalResults:
    """Run the protocol and write ``config.out``/metrics.json (+ videos); returns the results.

    ``runtime``: an already loaded :class:`~cosmos_ros.model.runtime.CosmosRuntime` to reuse
    (adapters are loaded into it and unloaded again); by default the model is loaded from ``config.model``.
    """
    from cosmos_ros.bag_tools.dataset_format import load_dataset
    from cosmos_ros.evaluation.results import write_results
    from cosmos_ros.evaluation.stats import summarize
    from cosmos_ros.media.video import write_video

    started = time.time()
    if config.seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {config.seeds}")
    if config.conditioning_frames < 1:
        raise ValueError(f"conditioning_frames must be at least 1, got {config.conditioning_frames}")
    dataset = load_dataset(config.dataset)
    clips = dataset.split(config.split)
    if config.max_clips is not None:
        clips = clips[: config.max_clips]
    if not clips:
        raise ValueError(
            f"dataset {config.dataset} has no clips in split {config.split!r}; "
            f"splits present: {sorted({c.split for c in dataset.clips})}"
        )
    out = Path(config.out)
    own_runtime = runtime is None
    if own_runtime:
        from cosmos_ros.model.runtime import CosmosRuntime

        runtime = CosmosRuntime.load(
            config.model, device=config.device, dtype=config.dtype, safety_checker=config.safety_checker
        )
    rows = _load_rows(runtime, config)
    out.mkdir(parents=True, exist_ok=True)  # only now: a run refused above leaves no empty folder
    try:
        return _run(
            config,
            dataset,
            clips,
            rows,
            runtime,
            out,
            progress,
            started,
            write_video,
            summarize,
            write_results,
        )
    finally:
        for row in rows:
            if row.runtime_name is not None and row.runtime_name in runtime.loaded_adapters:
                runtime.unload_adapter(row.runtime_name)
        if own_runtime:
            runtime.close()


def _run(config, dataset, clips, rows, rt, out, progress, started, write_video, summarize, write_results):
    from cosmos_ros.model.presets import resolve_preset
    from cosmos_ros.model.runtime import _settings as runtime_settings

    preset = resolve_preset(config.preset, rt.presets)
    chosen = runtime_settings(
        preset, config.num_frames, config.steps, None, config.height, config.width, config.fit, 0
    )
    num_frames, height, width = chosen["num_frames"], chosen["height"], chosen["width"]
    if config.conditioning_frames >= num_frames:
        raise ValueError(
            f"conditioning_frames ({config.conditioning_frames}) must be < num_frames ({num_frames})"
        )
    seeds = list(range(config.seeds))
    lpips = m.lpips_availability()
    results = EvalResults(
        settings={
            **config.settings_dict(),
            "num_frames": num_frames,
            "height": height,
            "width": width,
            "steps": chosen["steps"],
            "guidance": chosen["guidance"],
            "fps": chosen["fps"],
            "seed_list": seeds,
        },
        dataset={
            "path": str(Path(config.dataset)),
            "split": config.split,
            "manifest_sha256": dataset.manifest_sha256,
            "clip_ids": [c.clip_id for c in clips],
        },
        base={"fingerprint": rt.fingerprint, "model_dir": str(Path(config.model))},
        rows=[rows[0].info, RowInfo(STILL_ROW, "baseline"), *(r.info for r in rows[1:])],  # base first
        lpips=lpips.to_dict(),
        code_version=_code_version(),
    )
    watch = Stopwatch(progress, "evaluate", len(clips) * len(rows) * len(seeds))
    generated: dict[tuple[str, str, int], np.ndarray] = {}
    windows: dict[str, np.ndarray] = {}
    step = 0
    for clip in clips:
        window = real_window(dataset, clip, num_frames, height, width, config.fit)
        windows[clip.clip_id] = window
        real_rel = f"videos/{REAL_ROW}/{_safe(clip.clip_id)}.mp4"
        write_video(out / real_rel, window, chosen["fps"])
        values, notes = measure_real(
            window, config.conditioning_frames, config.sampson, config.motion_threshold
        )
        results.real.append(
            RealRecord(clip.clip_id, clip.clip_group, view_name(clip), values, notes, real_rel)
        )
        conditioning = window[: config.conditioning_frames]
        still, record = _still_baseline(window, clip, num_frames, config)
        generated[(STILL_ROW, clip.clip_id, STILL_SEED)] = still
        results.samples.append(record)
        for row in rows:
            for seed in seeds:
                prediction = rt.predict(
                    conditioning,
                    clip.prompt,
                    adapter=row.runtime_name,
                    num_frames=num_frames,
                    preset=config.preset,
                    steps=config.steps,
                    seed=seed,
                    height=height,
                    width=width,
                    fit=config.fit,
                )
                frames = prediction.frames
                generated[(row.info.name, clip.clip_id, seed)] = frames
                rel = f"videos/{_safe(row.info.name)}/{_safe(clip.clip_id)}_seed{seed}.mp4"
                write_video(out / rel, frames, prediction.fps)
                values, series, notes = measure_generated(
                    window, frames, config.conditioning_frames, config.sampson, config.motion_threshold
                )
                results.samples.append(
                    SampleRecord(
                        row.info.name,
                        clip.clip_id,
                        seed,
                        clip.clip_group,
                        view_name(clip),
                        values,
                        series,
                        notes,
                        rel,
                    )
                )
                step += 1
                watch.report(step, f"{row.info.name} {clip.clip_id} seed {seed}", psnr=values["psnr"])
    row_seeds = [(r.info.name, seeds) for r in rows] + [(STILL_ROW, [STILL_SEED])]
    _cross_views(results, clips, row_seeds, windows, generated, config)
    results.summary = summarize(results)
    results.run = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
                   "duration_s": round(time.time() - started, 3)}  # fmt: skip
    write_results(out, results)
    return results


def _still_baseline(
    window: np.ndarray, clip: Any, num_frames: int, config: EvalConfig
) -> tuple[np.ndarray, SampleRecord]:
    """The still prediction of one clip and its record, measured like a model's (no video file written)."""
    still = m.still_prediction(window[: config.conditioning_frames], num_frames)
    values, series, notes = measure_generated(
        window, still, config.conditioning_frames, config.sampson, config.motion_threshold
    )
    record = SampleRecord(
        STILL_ROW, clip.clip_id, STILL_SEED, clip.clip_group, view_name(clip), values, series, notes
    )
    return still, record


def _cross_views(results, clips, row_seeds, windows, generated, config) -> None:
    """Cross-view Sampson error for every pair of cameras in each clip group (real and generated).

    ``row_seeds``: ``(row name, seeds)`` of every row in ``generated`` (the still row has one seed).
    """
    groups: dict[str, list[Any]] = {}
    for clip in clips:
        if clip.clip_group:
            groups.setdefault(clip.clip_group, []).append(clip)
    for group, members in sorted(groups.items()):
        members = sorted(members, key=view_name)
        for a, b in itertools.combinations(members, 2):
            if view_name(a) == view_name(b):
                continue
            views, ids = [view_name(a), view_name(b)], [a.clip_id, b.clip_id]
            c = config.conditioning_frames
            values, notes = cross_view_metrics(windows[a.clip_id][c:], windows[b.clip_id][c:], config.sampson)
            results.cross_view.append(CrossViewRecord(REAL_ROW, group, None, views, ids, values, notes))
            for row, seeds in row_seeds:
                for seed in seeds:
                    va = generated[(row, a.clip_id, seed)][c:]
                    vb = generated[(row, b.clip_id, seed)][c:]
                    values, notes = cross_view_metrics(va, vb, config.sampson)
                    results.cross_view.append(CrossViewRecord(row, group, seed, views, ids, values, notes))


def _code_version() -> str:
    try:
        from cosmos_ros.training.output import code_version

        return code_version()
    except Exception:  # training extras missing: fall back to the package version
        from cosmos_ros import __version__

        return __version__


def registry_summary(results: EvalResults, row: str) -> dict[str, Any]:
    """The compact, plain-JSON result of one adapter row that is attached to its registry record."""
    summary: dict[str, Any] = {}
    for metric, per_row in results.summary.items():
        if row in per_row:
            entry = per_row[row]
            summary[metric] = {
                "mean": _json_number(entry.get("mean")),
                "ci95": [_json_number(entry.get("low")), _json_number(entry.get("high"))],
                "n": entry.get("n"),
            }
            if "delta" in entry:
                delta = entry["delta"]
                summary[metric]["delta_vs_base"] = _json_number(delta.get("mean"))
                summary[metric]["delta_ci95"] = [
                    _json_number(delta.get("low")),
                    _json_number(delta.get("high")),
                ]
            if BASE_ROW in per_row:
                summary[metric]["base_mean"] = _json_number(per_row[BASE_ROW].get("mean"))
    return {
        "metrics": summary,
        "dataset_manifest_sha256": results.dataset.get("manifest_sha256"),
        "split": results.dataset.get("split"),
        "clips": len(results.dataset.get("clip_ids", [])),
        "seeds": results.settings.get("seeds"),
        "base_fingerprint": results.base.get("fingerprint"),
        "code_version": results.code_version,
    }


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def default_out_dir() -> str:
    return os.path.join("eval_runs", time.strftime("%Y%m%d-%H%M%S"))
