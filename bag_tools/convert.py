"""Convert bags into a dataset folder: each bag by :mod:`~cosmos_ros.bag_tools.per_bag`, then
splits, manifest.jsonl and dataset.yaml.

Each bag is streamed once (bounded memory: one clip window per camera). Every clip's video and
prompt are written atomically, then a small record under ``.convert_state/`` marks it finished;
``--resume`` skips finished clips (without decoding them) and finished bags, and a kill at any
moment leaves only finished files plus temporary ``*.part`` names that the next run removes. A bag
that finished may be left out of (or missing on) the resume: its clips and records stay in use.
manifest.jsonl and dataset.yaml are (re)written at the end from the records, so a resumed run
gives the same dataset as one clean run; until then the folder reads as an interrupted conversion
(:func:`~cosmos_ros.bag_tools.dataset_format.load_dataset` refuses it).

Every path is checked before anything is created: a missing bag (a typo) stops the run up front,
naming each; on ``--resume`` only bags whose conversion did not finish are needed. A bag that exists
but fails (truncated, a damaged chunk, a missing topic, no prompt) is reported while the others
convert, and dataset.yaml records it: one bad recording never costs the good ones. When no clip
at all could be cut (every bag failed, or all were too short), no dataset is left behind: the
folder is removed, so the next run starts afresh.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cosmos_ros.bag_tools.convert_config import (
    EPISODE_MODES,
    RESOLUTION_PRESETS,
    SIZE_MULTIPLE,
    STATE_DIR,
    ConvertConfig,
    ConvertError,
    config_type_problems,
)
from cosmos_ros.bag_tools.dataset_format import (
    DATASET_YAML_NAME,
    MANIFEST_NAME,
    SPLITS,
    ClipRecord,
    DatasetInfo,
    write_dataset,
)
from cosmos_ros.bag_tools.per_bag import BagResult, convert_bag
from cosmos_ros.bag_tools.prompts import load_prompt_map
from cosmos_ros.bag_tools.readers import ACCEPTED_BAGS, IMAGE_TYPES, BagError, open_bag, topic_table

from cosmos_ros import __version__
from cosmos_ros.atomic import atomic_write_text
from cosmos_ros.progress import ProgressCallback, Stopwatch

__all__ = [
    "EPISODE_MODES",
    "RESOLUTION_PRESETS",
    "SIZE_MULTIPLE",
    "STATE_DIR",
    "BagResult",
    "ConvertConfig",
    "ConvertError",
    "ConvertReport",
    "assign_splits",
    "config_type_problems",
    "convert_bag",
    "convert_bags",
]


@dataclass
class ConvertReport:
    output: Path
    clips: list[ClipRecord]
    bags: list[BagResult]
    seconds: float
    frames_read: int

    @property
    def failed(self) -> list[BagResult]:
        return [b for b in self.bags if b.error]


# --------------------------------------------------------------------------------------------
# Many bags, one dataset


def assign_splits(
    episodes: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, str]:
    """Deterministic episode -> split; an episode is never split across train/val/test."""
    ordered = sorted(set(episodes))
    random.Random(seed).shuffle(ordered)
    n_val = int(len(ordered) * val_fraction + 0.5)
    n_test = int(len(ordered) * test_fraction + 0.5)
    if n_val + n_test >= len(ordered) and len(ordered) > 0:
        n_val = min(n_val, max(len(ordered) - 1, 0))
        n_test = min(n_test, max(len(ordered) - 1 - n_val, 0))
    splits = {}
    for i, episode in enumerate(ordered):
        splits[episode] = "val" if i < n_val else ("test" if i < n_val + n_test else "train")
    return splits


def _clean_partial_files(out: Path) -> None:
    """Remove temporary names a killed run left behind (atomic writes never finished)."""
    for part in out.rglob(".*.part"):
        if part.is_dir():
            shutil.rmtree(part, ignore_errors=True)
        else:
            part.unlink(missing_ok=True)


def _prepare_output(out: Path, params: dict[str, Any], resume: bool, overwrite: bool) -> None:
    """Make ``out`` ready to write; a --resume folder must have passed :func:`_resume_plan` first."""
    params_file = out / STATE_DIR / "parameters.json"
    params_text = json.dumps(params, sort_keys=True, indent=1)
    if out.exists() and not out.is_dir():
        raise ConvertError(f"output {out} is a file; give a folder path for the dataset")
    if out.exists() and any(out.iterdir()):
        if resume:
            _clean_partial_files(out)
            # Until this run writes them anew, the folder must read as unfinished, not as the old result.
            for name in (DATASET_YAML_NAME, MANIFEST_NAME):
                (out / name).unlink(missing_ok=True)
        elif overwrite:
            known = {STATE_DIR, "videos", "metas", MANIFEST_NAME, DATASET_YAML_NAME}
            strangers = sorted(p.name for p in out.iterdir() if p.name not in known)
            if strangers:
                raise ConvertError(
                    f"{out}: --overwrite refuses to delete a folder that holds other things: "
                    f"{', '.join(strangers[:5])}"
                )
            shutil.rmtree(out)
        else:
            raise ConvertError(
                f"output folder {out} exists; pass --resume to continue it or --overwrite to replace it"
            )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(params_file, params_text)


def _options_text(params: Mapping[str, Any]) -> str:
    """The parameters other than the bag list, as comparable text."""
    return json.dumps({k: v for k, v in params.items() if k != "bags"}, sort_keys=True)


def _resume_plan(out: Path, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, BagResult]]:
    """The parameters to record and the finished bags of the run in ``out`` that --resume continues.

    It only reads, so a refusal leaves ``out`` as it was. Why the bags compare as a set in which
    finished bags are optional: a user may delete or move bags whose clips are already in ``out`` (to
    free disk space) and must still be able to finish the run. Options that differ, a bag the run did
    not have, or a bag left out whose conversion did not finish would give another dataset than the
    run that was started, so those are refused. The started run's parameters (all of its bags) are
    what gets recorded, as a clean run would have recorded them.
    """
    params_file = out / STATE_DIR / "parameters.json"
    if not params_file.is_file():
        raise ConvertError(f"{out}: not a conversion this tool started ({params_file} missing)")
    again = "use --overwrite to start again"
    try:
        started = json.loads(params_file.read_text(encoding="utf-8"))
        started_bags = [str(b) for b in started["bags"]]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConvertError(f"{out}: cannot read {params_file} ({exc}); {again}") from exc
    added = [b for b in params["bags"] if b not in started_bags]
    if _options_text(started) != _options_text(params) or added:
        extra = f": bag(s) {', '.join(added)} were not part of it" if added else ""
        raise ConvertError(
            f"{out}: --resume with different parameters than the run that started it{extra} "
            f"(see {params_file}); {again}"
        )
    finished: dict[str, BagResult] = {}
    for file in sorted((out / STATE_DIR / "bags").glob("*.json")):
        data = json.loads(file.read_text(encoding="utf-8"))
        finished[data["bag"]] = BagResult(**data)
    left_out = [b for b in started_bags if b not in params["bags"] and b not in finished]
    if left_out:
        raise ConvertError(
            f"{out}: --resume needs bag(s) {', '.join(left_out)} of the run that started it, because "
            f"their conversion did not finish (only finished bags may be left out); give them again, "
            f"or {again}; nothing was written"
        )
    return {**params, "bags": started_bags}, finished  # the key order of a clean run's dataset.yaml


def _preflight(bags: Sequence[Path], topics: Sequence[str], resuming: Path | None = None) -> int:
    """Check every path before anything is created; returns the camera frames for the progress bar.

    Why: a typo in one path must not cost a half-built output folder (or hours of converting the
    other bags first), so every missing bag is named at once. A bag that exists but cannot be
    opened is left to its own conversion, which records it as failed while the others convert.
    ``resuming`` (the folder of a started run, whose finished bags are not passed here) only
    changes the message: a missing bag is then one whose conversion did not finish.
    """
    missing: list[str] = []
    total = 0
    for bag in bags:
        if not bag.exists():
            missing.append(str(bag))
            continue
        try:
            with open_bag(bag) as reader:
                table = topic_table(reader)
        except BagError:
            continue  # reported once, by its own conversion (which fails the same way)
        if topics:
            total += sum(table[t][1] for t in topics if t in table)
        else:
            total += max((c for m, c in table.values() if m in IMAGE_TYPES), default=0)
    if missing:
        why = (
            f"; --resume needs them because their conversion in {resuming} did not finish (only "
            "finished bags may be missing)"
            if resuming
            else ""
        )
        raise ConvertError(
            f"bag(s) not found: {', '.join(missing)}{why}; accepted: {ACCEPTED_BAGS}; nothing was written"
        )
    return total


def _no_dataset_message(results: Sequence[BagResult], config: ConvertConfig, left: str) -> str:
    """Why no clip came out of any bag (one line for one bag; a line per bag when several failed)."""
    if all(r.error for r in results):
        if len(results) == 1:
            return f"{results[0].error}; so no dataset was written ({left})"
        errors = "".join(f"\n  {r.error}" for r in results)
        return f"no bag converted ({len(results)} failed), so no dataset was written; {left}:{errors}"
    seconds = config.clip_frames / config.fps
    why = []
    for r in results:
        if r.error:
            why.append(r.error)
            continue
        text = f"bag {r.bag}: {r.frames_read} camera frame(s) over {r.seconds:.2f} s"
        gaps = sum(1 for k in r.skipped if k.get("missing_frames"))
        if gaps:
            text += f", {gaps} window(s) skipped at gaps over {config.tolerance_ns() / 1e6:g} ms"
        why.extend([text, *r.warnings, *r.notes])
    return (
        f"no clip could be cut: each needs {config.clip_frames} frames at {config.fps:g} fps, i.e. "
        f"{seconds:.1f} s of one camera without gaps; {'; '.join(why)}; so no dataset was written "
        f"({left}); record longer episodes, or lower --clip-frames (4k+1) or --fps"
    )


def _remove_output(out: Path, existed: bool) -> None:
    """Undo what this run created in ``out`` (keeping a folder that was there, empty, before)."""
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in out.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


_worker_queue: Any = None


def _worker_init(queue: Any) -> None:
    global _worker_queue
    _worker_queue = queue


def _worker_convert(bag: str, out: str, config: ConvertConfig) -> BagResult:
    return convert_bag(bag, out, config, on_frames=lambda n: _worker_queue.put(n) if n else None)


def convert_bags(
    bags: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    config: ConvertConfig,
    *,
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> ConvertReport:
    """Convert ``bags`` into the dataset folder ``output``; see the module docstring."""
    config.check()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConvertError(f"workers must be an integer >= 1 (1 = convert in this process), got {workers!r}")
    if not bags:
        raise ConvertError("no bags given")
    bag_paths = [Path(b) for b in bags]
    resolved = [str(p.resolve()) for p in bag_paths]
    if len(set(resolved)) != len(resolved):
        raise ConvertError("the same bag is given twice")
    if config.prompt_map:
        load_prompt_map(config.prompt_map)  # a missing or malformed map stops the run before it starts
    started = time.monotonic()
    out = Path(output)
    params: dict[str, Any] = {"bags": resolved, **asdict(config)}
    continuing = resume and out.is_dir() and any(out.iterdir())
    finished: dict[str, BagResult] = {}
    if continuing:
        params, finished = _resume_plan(out, params)
    todo = [p for p, r in zip(bag_paths, resolved, strict=True) if r not in finished]
    total = _preflight(todo, config.topics, out if continuing else None)
    total += sum(r.frames_read for r in finished.values())
    # What a failed run may remove: only what it created (never a --resume folder's earlier work).
    created_here = not continuing
    existed = out.is_dir()
    _prepare_output(out, params, resume, overwrite)

    watch = Stopwatch(progress, "convert", total)
    done_frames = 0

    def on_frames(n: int) -> None:
        nonlocal done_frames
        done_frames += n
        elapsed = max(time.monotonic() - started, 1e-6)
        watch.report(done_frames, frames_per_s=done_frames / elapsed)

    for result in finished.values():
        on_frames(result.frames_read)

    results: list[BagResult] = list(finished.values())
    if workers <= 1 or len(todo) <= 1:
        for bag in todo:
            results.append(convert_bag(bag, out, config, on_frames))
    else:
        import multiprocessing as mp
        import queue as queue_mod
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")
        frames_queue = ctx.Queue()
        with ProcessPoolExecutor(
            max_workers=min(workers, len(todo)),
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(frames_queue,),
        ) as pool:
            futures = [pool.submit(_worker_convert, str(b), str(out), config) for b in todo]
            while not all(f.done() for f in futures):
                try:
                    on_frames(frames_queue.get(timeout=0.2))
                except queue_mod.Empty:
                    pass
            results.extend(f.result() for f in futures)
    results.sort(key=lambda r: r.bag)
    if all(r.error for r in results) or not any(r.clips for r in results):
        if created_here:
            _remove_output(out, existed and not overwrite)
            left = f"removed what this run wrote to {out}, so the same command can run again"
        else:
            left = f"{out} keeps its {STATE_DIR}/; fix the bags and --resume, or start again with --overwrite"
        raise ConvertError(_no_dataset_message(results, config, left))

    episodes = [c["episode"] for r in results for c in r.clips]
    splits = assign_splits(episodes, config.val_fraction, config.test_fraction, config.seed)
    records = [ClipRecord.from_dict({**c, "split": splits[c["episode"]]}) for r in results for c in r.clips]
    report = {
        "bags": [
            {
                "bag": r.bag,
                "sha256": r.sha256,
                "clips": len(r.clips),
                "frames_read": r.frames_read,
                "skipped_windows": r.skipped,
                "notes": r.notes,
                "warnings": r.warnings,
                "error": r.error,
            }
            for r in results
        ]
    }
    summary = {
        "clips": len(records),
        "episodes": len(set(episodes)),
        "splits": {s: sum(r.split == s for r in records) for s in SPLITS},
        "failed_bags": sum(bool(r.error) for r in results),
    }
    info = DatasetInfo(tool_version=__version__, parameters=params, summary=summary, report=report)
    write_dataset(out, records, info)
    return ConvertReport(out, records, results, time.monotonic() - started, done_frames)
