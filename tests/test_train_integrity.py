"""`cosmos-ros train` on damaged checkpoints and a run killed before registering (issue 19).

A checkpoint records the sha256 of its files; a resume refuses a damaged one in one line naming
it (before, a flipped byte resumed as a different run, and truncated files or pickles ended in a
traceback). A run's finished state includes its registration.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cosmos_ros.training.config import load_config
from cosmos_ros.training.loop import train
from train_helpers import make_plain_dataset, one_thread, tiny_overrides

from cosmos_ros.cli import main

_threads = pytest.fixture(autouse=True)(one_thread)

STEP = "step_00000003"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A base model, a dataset, and a run stopped after its step-3 checkpoint (of 6 steps)."""
    from cosmos_ros.model.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("integrity")
    base = make_tiny_model(root / "base", seed=0)
    data = make_plain_dataset(root / "data", clips=3)
    stopped = root / "stopped"
    cfg = load_config("tiny_cpu", _items(root, base, data, stopped))
    train(cfg, stop_after_steps=3)
    assert (stopped / "checkpoints" / STEP / "state.json").is_file()
    return root, base, data, stopped


def _items(root: Path, base: Path, data: Path, out: Path, **extra: object) -> list[str]:
    items = {"validation_clips": 0, "checkpoint_every": 3, "max_steps": 6, **extra}
    return tiny_overrides(base, data, out, root / "cache", **items)


def _argv(items: list[str]) -> list[str]:
    argv = ["train", "--config", "tiny_cpu", "--no-progress"]
    for item in items:
        argv += ["--set", item]
    return argv


def _copy_run(world, tmp_path: Path) -> tuple[Path, list[str]]:
    root, base, data, stopped = world
    out = shutil.copytree(stopped, tmp_path / "run")
    return out, _items(root, base, data, out)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("cosmos-ros: error: "), err
    return lines[-1]


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _drop_checksums(checkpoint: Path) -> None:
    """What a checkpoint written before checksums were recorded looks like."""
    info = json.loads((checkpoint / "state.json").read_text())
    info.pop("checksums", None)
    (checkpoint / "state.json").write_text(json.dumps(info))


class _RunsCode:
    """A pickle that would create a file if anything unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


# ------------------------------------------------------------------------------ checksums
def test_checkpoints_record_the_sha256_of_their_files_and_an_intact_one_resumes(world, tmp_path, capsys):
    import hashlib

    out, items = _copy_run(world, tmp_path)
    ckpt = out / "checkpoints" / STEP
    sums = json.loads((ckpt / "state.json").read_text())["checksums"]
    for name in ("adapter.safetensors", "training_state.pt"):
        assert sums[name] == hashlib.sha256((ckpt / name).read_bytes()).hexdigest()
    assert len(sums["state.json"]) == 64
    assert main(_argv(items)) == 0, capsys.readouterr().err
    assert "adapter written to" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("adapter.safetensors", lambda p: _flip_byte(p, p.stat().st_size - 100)),  # in the tensor data
        ("training_state.pt", lambda p: _flip_byte(p, p.stat().st_size // 2)),
        ("training_state.pt", lambda p: p.write_bytes(p.read_bytes()[:-500])),
        (
            "state.json",
            lambda p: p.write_text(p.read_text().replace('"step_in_epoch": 0', '"step_in_epoch": 1')),
        ),
    ],
    ids=["adapter-bit", "state-bit", "state-truncated", "info-edited"],
)
def test_a_damaged_checkpoint_is_refused_naming_it(world, tmp_path, capsys, name, damage):
    out, items = _copy_run(world, tmp_path)
    ckpt = out / "checkpoints" / STEP
    before = (ckpt / name).read_bytes()
    damage(ckpt / name)
    assert (ckpt / name).read_bytes() != before
    assert main(_argv(items)) == 1
    message = _one_line_error(capsys)
    assert f"checkpoint {ckpt} is damaged: {name}" in message, message
    assert "differ(s) from the sha256 its state.json records" in message
    assert not (out / "adapter").exists() and not (out / "checkpoints" / "step_00000006").exists()


# ------------------------------------------------------------------------------ tracebacks -> one line
@pytest.mark.parametrize(
    ("name", "damage", "needle"),
    [
        (
            "training_state.pt",
            lambda p: p.write_bytes(p.read_bytes()[:-500]),
            "not a readable training state",
        ),
        ("adapter.safetensors", lambda p: p.write_bytes(p.read_bytes()[:-500]), "not a readable safetensors"),
        (
            "adapter.safetensors",
            lambda p: p.write_bytes(pickle.dumps({"w": [1.0]})),
            "not a readable safetensors",
        ),
        ("training_state.pt", "pickle", "objects other than tensors"),
        ("state.json", lambda p: p.write_bytes(pickle.dumps({"step": 3})), "not valid JSON"),
    ],
    ids=["state-truncated", "adapter-truncated", "adapter-pickle", "state-code-pickle", "info-pickle"],
)
def test_unreadable_checkpoint_files_are_one_line_errors_naming_them(
    world, tmp_path, capsys, name, damage, needle
):
    # Checkpoints written before checksums (or damaged with their checksums) reach the loaders.
    out, items = _copy_run(world, tmp_path)
    ckpt = out / "checkpoints" / STEP
    _drop_checksums(ckpt)
    marker = out / "code_ran"
    if damage == "pickle":
        import torch

        torch.save({"optimizer": _RunsCode(marker)}, ckpt / name)
    else:
        damage(ckpt / name)
    assert main(_argv(items)) == 1
    message = _one_line_error(capsys)
    assert str(ckpt / name) in message and needle in message, message
    assert not marker.exists()


# ------------------------------------------------------------------------------ registration
def test_a_run_killed_before_registering_registers_on_its_next_start(world, tmp_path, capsys):
    from cosmos_ros.registry import open_registry
    from cosmos_ros.registry.artifacts import FAULT_ENV

    root, base, data, _ = world
    registry = tmp_path / "registry"
    out = tmp_path / "run"
    items = _items(root, base, data, out, max_steps=3, registry=registry, adapter_name="arm")
    # SIGKILL inside register(), after the adapter folder was written: what a power cut does there.
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **{FAULT_ENV: "after_blob"})
    killed = subprocess.run(
        [sys.executable, "-m", "cosmos_ros.cli", *_argv(items)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (out / "adapter" / "adapter_metadata.json").is_file()
    with open_registry(registry) as reg:
        assert reg.list(name="arm") == []

    assert main(_argv(items)) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "run already complete" in printed and "registered it as arm@1" in printed, printed
    with open_registry(registry) as reg:
        records = reg.list(name="arm")
    import hashlib

    weights = (out / "adapter" / "pytorch_lora_weights.safetensors").read_bytes()
    assert [r.artifact_sha256 for r in records] == [hashlib.sha256(weights).hexdigest()]

    assert main(_argv(items)) == 0  # finished and registered: nothing more to do
    assert "registered it" not in capsys.readouterr().out
    with open_registry(registry) as reg:
        assert len(reg.list(name="arm")) == 1
