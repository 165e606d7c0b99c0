"""The README's "Scaling out" training commands are the ones tested (issue 22).

Both torchrun commands are read from the README, checked word by word against what this test
substitutes (GPU count -> 2 CPU processes, the head node -> this host, the recipe -> tiny_cpu on
fixtures), and run: two gloo processes must train the adapter one process trains with twice the
batch. The multi-node command runs as one node through the same c10d rendezvous.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cosmos_ros.training.config import load_config
from cosmos_ros.training.loop import train
from train_helpers import make_plain_dataset, one_thread, tiny_overrides

_threads = pytest.fixture(autouse=True)(one_thread)

REPO = Path(__file__).resolve().parents[1]
#: The launcher flags each README command must have, before this test localises them.
LAUNCHERS = {
    "one node": ["--standalone", "--nproc_per_node=8"],
    "several nodes": [
        "--nnodes=2",
        "--nproc_per_node=8",
        "--rdzv_id=my_robot",
        "--rdzv_backend=c10d",
        "--rdzv_endpoint=head:29500",
    ],
}
PROGRAM = ["-m", "cosmos_ros.cli", "train", "--config", "lora_recipe"]
#: The README's check of context parallelism, as written there.
CP_CHECK = ["torchrun", "--standalone", "--nproc_per_node=2", "-m", "cosmos_ros.model.context_parallel"]
CP_CHECK += ["/models/Cosmos-Predict2.5-2B", "--ulysses", "2"]
RUN = {"batch_size": 1, "max_steps": 3, "validation_clips": 0, "checkpoint_every": 100}


def readme_commands() -> list[list[str]]:
    """The ``torchrun`` lines of the README's "Scaling out" section, continuation lines joined."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Scaling out\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("torchrun "):
                commands.append(shlex.split(line))
    return commands


def _which(launcher: str) -> list[str]:
    """The README command whose launcher flags are ``LAUNCHERS[launcher]``, checked word by word."""
    found = [c for c in readme_commands() if c[0] == "torchrun" and "cosmos_ros.cli" in c]
    flags = LAUNCHERS[launcher]
    matching = [c for c in found if c[1 : 1 + len(flags)] == flags]
    assert len(matching) == 1, (launcher, found)
    words = matching[0]
    rest = words[1 + len(flags) :]
    assert rest[: len(PROGRAM)] == PROGRAM, rest
    sets = rest[len(PROGRAM) :]
    assert sets[0::2] == ["--set"] * 3 and [s.split("=")[0] for s in sets[1::2]] == [
        "base_model",
        "dataset",
        "output_dir",
    ], sets
    return flags


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _localise(flags: list[str]) -> list[str]:
    """The README's launcher flags for 2 CPU processes on this host."""
    local = {"--nproc_per_node=8": "--nproc_per_node=2", "--nnodes=2": "--nnodes=1"}
    local["--rdzv_endpoint=head:29500"] = f"--rdzv_endpoint=127.0.0.1:{_free_port()}"
    return [local.get(flag, flag) for flag in flags]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from cosmos_ros.model.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("scaleout")
    base = make_tiny_model(root / "base", seed=0)
    data = make_plain_dataset(root / "data", clips=3)
    return root, base, data


@pytest.fixture(scope="module")
def single(world):
    """One process, twice the per-process batch: what two processes of batch 1 must reproduce."""
    root, base, data = world
    items = tiny_overrides(base, data, root / "single", root / "cache", **{**RUN, "batch_size": 2})
    return train(load_config("tiny_cpu", items))


def test_the_readme_has_both_training_commands():
    commands = [c for c in readme_commands() if "cosmos_ros.cli" in c]
    assert len(commands) == 2, commands
    for launcher in LAUNCHERS:
        _which(launcher)


def test_readme_prediction_recipe_is_python_that_imports_what_exists():
    """The README's context-parallel script: valid Python whose imports resolve (it needs GPUs to run)."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("\n## Scaling out\n", 1)[1]
    (snippet,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)
    imports = [node for node in ast.parse(snippet).body if isinstance(node, ast.ImportFrom)]
    assert {node.module for node in imports} >= {"diffusers", "cosmos_ros.model.context_parallel"}
    for node in imports:
        module = __import__(node.module, fromlist=["_"])
        for alias in node.names:
            assert hasattr(module, alias.name), (node.module, alias.name)
    assert "enable_context_parallel(pipe.transformer" in snippet


def test_readme_context_parallel_check_command_passes_on_two_processes(world, tmp_path):
    """The README's check of prediction on several GPUs, on the tiny model over gloo."""
    found = [c for c in readme_commands() if "cosmos_ros.model.context_parallel" in c]
    assert found == [CP_CHECK], found
    _, base, _ = world
    report_file = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", *CP_CHECK[1:]]
    cmd[cmd.index("/models/Cosmos-Predict2.5-2B")] = str(base)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [*cmd, "--json", str(report_file)], env=env, capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(report_file.read_text())
    assert report["ok"] and report["mode"] == "ulysses" and report["world_size"] == 2
    for form in ("per_sample_timestep", "per_frame_timestep"):
        assert report[form]["max_abs_output"] > 0.5 and report[form]["max_abs_diff"] <= 1e-5, report
    # every rank prints its own line, each with the whole output compared
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted(line["rank"] for line in lines) == [0, 1] and all(line["ok"] for line in lines)


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_readme_training_command_on_two_processes_equals_one_with_twice_the_batch(
    world, single, tmp_path, launcher
):
    root, base, data = world
    out = root / launcher.replace(" ", "_")
    cmd = [sys.executable, "-m", "torch.distributed.run", *_localise(_which(launcher))]
    cmd += ["-m", "cosmos_ros.cli", "train", "--config", "tiny_cpu", "--no-progress"]
    for item in tiny_overrides(base, data, out, root / "cache", **RUN):
        cmd += ["--set", item]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]

    meta = json.loads((out / "adapter" / "adapter_metadata.json").read_text())
    assert meta["metrics"]["world_size"] == 2
    state = json.loads((out / "checkpoints" / "step_00000003" / "state.json").read_text())
    assert state["losses"] == pytest.approx(single.losses, rel=1e-4)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000003"]  # rank 0's only
    from safetensors.torch import load_file

    a = load_file(single.adapter_dir / "pytorch_lora_weights.safetensors")
    b = load_file(out / "adapter" / "pytorch_lora_weights.safetensors")
    assert a.keys() == b.keys()
    for key in a:  # same samples and draws; gloo only changes the order of float sums
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
