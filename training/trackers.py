"""Experiment trackers for ``report_to``: TensorBoard, Weights & Biases and MLflow through accelerate.

diffusers' training scripts take ``--report_to`` and hand it to accelerate's trackers; we do the
same with accelerate's tracker classes directly (the trainer has no ``Accelerator``), on the main
process only. Defaults keep a run self-contained and off the network: TensorBoard under
``output_dir/logs``, wandb offline under ``output_dir/wandb`` (unless ``WANDB_MODE`` is set), MLflow
in a ``file:`` store under ``output_dir/mlruns`` (unless ``MLFLOW_TRACKING_URI`` is set), with
MLflow's usage telemetry off (unless ``MLFLOW_DISABLE_TELEMETRY`` is set).
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

#: The trackers ``report_to`` can name, in the order they are opened.
TRACKERS = ("tensorboard", "wandb", "mlflow")
#: Accepted words: a tracker, ``all`` (every installed tracker) or ``none``.
REPORT_TO_WORDS = (*TRACKERS, "all", "none")
#: Tracker -> (module to import, pip package that provides it).
_PACKAGES = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow-skinny"),
}
#: wandb project and MLflow experiment when the environment names none.
DEFAULT_PROJECT = "cosmos_ros"


class MissingTrackerError(ValueError):
    """A ``report_to`` tracker whose package is not installed (a ValueError, so the CLI prints one line)."""


def parse_report_to(value: str) -> tuple[str, ...]:
    """The trackers a ``report_to`` value names, without checking that they are installed.

    A comma list names several (``tensorboard,mlflow``); ``none`` names none; ``all`` is resolved
    by :func:`resolve_report_to`, since it depends on what is installed.
    """
    words = [w.strip().lower() for w in value.split(",") if w.strip()]
    unknown = [w for w in words if w not in REPORT_TO_WORDS]
    if not words or unknown:
        raise ValueError(
            f"report_to={value!r}: accepted {' | '.join(REPORT_TO_WORDS)} or a comma list of trackers"
        )
    if ("none" in words or "all" in words) and len(words) > 1:
        raise ValueError(f"report_to={value!r}: 'none' and 'all' stand alone, not in a list")
    return tuple(dict.fromkeys(words)) if words != ["none"] else ()


def _installed(name: str) -> bool:
    if name == "mlflow":
        # MLflow 3 sends usage telemetry when first imported; a local file-store run stays off the
        # network unless the user turns it back on (MLFLOW_DISABLE_TELEMETRY=false).
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        importlib.import_module(_PACKAGES[name][0])
    except ImportError:
        return False
    return True


def resolve_report_to(value: str) -> tuple[str, ...]:
    """The trackers to open; raise :class:`MissingTrackerError` for a named one that is not installed.

    Called before training starts (on every process, so all of them stop alike).
    """
    names = parse_report_to(value)
    if names == ("all",):
        return tuple(n for n in TRACKERS if _installed(n))
    for name in names:
        if not _installed(name):
            module, package = _PACKAGES[name]
            raise MissingTrackerError(
                f"report_to={name} needs the {module} package, which is not installed: pip install {package}"
            )
    return names


def hyperparameters(config: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """``config`` with lists and nulls as JSON text: TensorBoard's hparams take only scalars and strings."""
    return {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v) for k, v in config.items()}


class RunLogger:
    """The open trackers of one run: scalars go to all of them, validation GIFs to TensorBoard."""

    def __init__(self, trackers: list[Any]) -> None:
        self.trackers = trackers

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.trackers]

    def log(self, values: dict[str, float], step: int) -> None:
        """Log scalars at optimizer step ``step``."""
        for tracker in self.trackers:
            tracker.log(values, step=step)

    def log_video(self, tag: str, frames: np.ndarray, step: int, fps: float) -> None:
        """An animated GIF in TensorBoard; every tracker has the MP4s in output_dir/validation."""
        from .tensorboard_video import add_gif_video

        for tracker in self.trackers:
            if tracker.name == "tensorboard":
                add_gif_video(tracker.writer, tag, frames, step, fps)
                tracker.writer.flush()

    def close(self) -> None:
        """Finish every tracker (wandb writes its offline run, MLflow ends its run)."""
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []


def _make_tracker(name: str, output_dir: Path) -> Any:
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

    if name == "tensorboard":
        return TensorBoardTracker("", str(output_dir / "logs"))
    if name == "wandb":
        # Offline unless the user chose otherwise: a run never reaches the network by surprise.
        mode = os.environ.get("WANDB_MODE") or "offline"
        output_dir.mkdir(parents=True, exist_ok=True)
        project = os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        return WandBTracker(project, dir=str(output_dir), mode=mode, name=output_dir.name)
    import mlflow

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        # MLflow 3 keeps the file store in maintenance mode behind this switch; it is the one backend
        # mlflow-skinny can write without a server or SQLAlchemy.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri((output_dir / "mlruns").resolve().as_uri())
    return MLflowTracker(experiment_name=DEFAULT_PROJECT, run_name=output_dir.name)


def open_run_logger(
    names: tuple[str, ...], output_dir: Path, config: dict[str, Any], *, cpu: bool = False
) -> RunLogger:
    """Start the trackers ``names`` for a run in ``output_dir`` and store ``config`` as hyperparameters.

    Called on the main process only. accelerate's trackers log through its process-aware logger,
    which needs the (shared, singleton) accelerate state: created here, on the process group the
    trainer already set up (``cpu``: the run is on the CPU, so accelerate picks no GPU).
    """
    if names:
        from accelerate import PartialState

        PartialState(cpu=cpu)
    logger = RunLogger([])
    params = hyperparameters(config)
    try:
        for name in names:
            tracker = _make_tracker(name, output_dir)
            tracker.main_process_only = False  # only the main process opens trackers; no PartialState needed
            tracker.start()
            logger.trackers.append(tracker)
            tracker.store_init_configuration(params)
    except BaseException:
        logger.close()
        raise
    return logger
