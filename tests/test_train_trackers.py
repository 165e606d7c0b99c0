"""``report_to``: the trainer logs through accelerate's trackers (issue 20).

Short real runs of the tiny pipeline with each tracker, read back from what the tracker wrote: the
MLflow file store's metric files, the wandb offline run's history. Nothing here reaches the network:
wandb runs offline, MLflow writes a local ``file:`` store with its telemetry off.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import make_plain_dataset, one_thread, tiny_overrides

_threads = pytest.fixture(autouse=True)(one_thread)

STEPS = 3


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer's own defaults decide (offline wandb, local MLflow store), whatever the shell has set."""
    for name in (
        "WANDB_MODE",
        "WANDB_PROJECT",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_RUN_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")


def _train(tmp_path: Path, report_to: str, **extra: object):
    from cosmos_ros.training.config import load_config
    from cosmos_ros.training.loop import train

    from cosmos_ros.model.tiny import make_tiny_model

    base = make_tiny_model(tmp_path / "base", seed=0)
    data = make_plain_dataset(tmp_path / "data", clips=3)
    settings = {"max_steps": STEPS, "log_every": 1, "checkpoint_every": 100, "report_to": report_to, **extra}
    cfg = load_config(
        "tiny_cpu", tiny_overrides(base, data, tmp_path / "run", tmp_path / "cache", **settings)
    )
    return cfg, train(cfg)


def _mlflow_metric(store: Path, key: str) -> list[tuple[int, float]]:
    """(step, value) rows of ``key`` in the one run of a file store (lines: ``timestamp value step``)."""
    (path,) = store.glob(f"*/*/metrics/{key}")
    rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(int(step), float(value)) for _, value, step in rows]


def _wandb_records(path: Path) -> list[bytes]:
    """The protobuf records of a ``.wandb`` file (a LevelDB-style log; wandb ships no Python reader now).

    A 7-byte file header, then 32 KiB blocks of chunks, each with a 7-byte header (crc32, length,
    type: 1 full, 2 first, 3 middle, 4 last); a block's tail too short for a header is padding.
    """
    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or kind == 0:
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            records.append(pending)
            pending = b""
    return records


def test_default_is_tensorboard() -> None:
    from cosmos_ros.training.config import TrainConfig, load_config
    from cosmos_ros.training.trackers import parse_report_to, resolve_report_to

    assert TrainConfig().report_to == "tensorboard"
    assert load_config("lora_recipe").report_to == "tensorboard"
    assert parse_report_to("tensorboard, mlflow") == ("tensorboard", "mlflow")
    assert parse_report_to("none") == ()
    assert resolve_report_to("all") == ("tensorboard", "wandb", "mlflow")  # every installed tracker


@pytest.mark.parametrize("value", ["comet", "", "none,wandb", "all,mlflow"])
def test_bad_report_to_names_the_field(value: str) -> None:
    from cosmos_ros.training.config import load_config

    with pytest.raises(
        ValueError, match=r"--set report_to=.*config field report_to=.*accepted: tensorboard \| wandb"
    ):
        load_config("tiny_cpu", [f"report_to={value}"])


def test_mlflow_file_store_holds_the_logged_losses(tmp_path: Path) -> None:
    cfg, result = _train(tmp_path, "mlflow", validation_clips=1)
    store = Path(cfg.output_dir) / "mlruns"
    losses = _mlflow_metric(store, "train/loss")
    assert [step for step, _ in losses] == list(range(1, STEPS + 1))
    assert [value for _, value in losses] == pytest.approx(result.losses)
    assert [step for step, _ in _mlflow_metric(store, "train/lr")] == list(range(1, STEPS + 1))
    ((step, psnr),) = _mlflow_metric(store, "val/psnr")
    assert (step, psnr) == (STEPS, pytest.approx(result.metrics["val_psnr"]))
    (params,) = store.glob("*/*/params")
    assert (params / "rank").read_text(encoding="utf-8") == "8"
    assert (params / "report_to").read_text(encoding="utf-8") == "mlflow"
    assert not (Path(cfg.output_dir) / "logs").exists()  # no TensorBoard unless asked for


def test_wandb_runs_offline_with_the_history(tmp_path: Path) -> None:
    from wandb.proto import wandb_internal_pb2

    cfg, result = _train(tmp_path, "wandb")
    (run_dir,) = (Path(cfg.output_dir) / "wandb").glob("offline-run-*")
    (records,) = run_dir.glob("run-*.wandb")
    history: list[dict[str, object]] = []
    config: dict[str, object] = {}
    for data in _wandb_records(records):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            )
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
    rows = [row for row in history if "train/loss" in row]
    assert [row["_step"] for row in rows] == list(range(1, STEPS + 1))
    assert [row["train/loss"] for row in rows] == pytest.approx(result.losses)
    assert config.get("rank") == 8 and config.get("report_to") == "wandb"


def test_missing_tracker_package_is_one_line_before_training(tmp_path: Path) -> None:
    """With wandb unimportable, the run stops before it loads anything, naming the pip command."""
    overrides = [
        f"base_model={tmp_path / 'no_base'}",
        f"dataset={tmp_path / 'no_data'}",
        f"output_dir={tmp_path / 'run'}",
        "report_to=tensorboard,wandb",
    ]
    script = (
        "import sys; sys.modules['wandb'] = None\n"
        "from cosmos_ros.training.config import load_config\n"
        "from cosmos_ros.training.loop import train\n"
        f"cfg = load_config('tiny_cpu', {overrides!r})\n"
        "try:\n"
        "    train(cfg)\n"
        "except ValueError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    expected = "report_to=wandb needs the wandb package, which is not installed: pip install wandb"
    assert done.stdout.strip().splitlines() == [f"MissingTrackerError {expected}"]
    assert not (tmp_path / "run").exists()


def test_report_to_none_writes_no_logs(tmp_path: Path) -> None:
    cfg, result = _train(tmp_path, "none")
    assert result.adapter_dir is not None
    assert not any((Path(cfg.output_dir) / name).exists() for name in ("logs", "wandb", "mlruns"))
