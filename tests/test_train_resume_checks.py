"""Resume safety of the trainer on the tiny model (CPU): what a checkpoint must share with the run
resuming it, config errors that name the field and its origin, re-running a finished run, and
Ctrl-C or SIGTERM writing a checkpoint of the current step, in one process and under torchrun in two.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cosmos_ros.training.checkpoints import RESUME_MAY_CHANGE, RESUME_MUST_MATCH
from cosmos_ros.training.config import TrainConfig, load_config
from cosmos_ros.training.loop import train
from train_helpers import make_plain_dataset, one_thread, tiny_overrides

_threads = pytest.fixture(autouse=True)(one_thread)

FAST = {"validation_clips": 0, "checkpoint_every": 3}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from cosmos_ros.model.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("resume_checks")
    base = make_tiny_model(root / "base", seed=0)
    other_base = make_tiny_model(root / "base_other", seed=1)
    data = make_plain_dataset(root / "data", clips=3)
    other_data = make_plain_dataset(root / "data_other", clips=4)
    return root, base, other_base, data, other_data


def _overrides(world, name: str, **extra: object) -> list[str]:
    root, base, _, data, _ = world
    items = {**FAST, **extra}
    base, data = items.pop("base_model", base), items.pop("dataset", data)
    return tiny_overrides(base, data, root / name, root / "cache", **items)


def _cfg(world, name: str, **extra: object) -> TrainConfig:
    return load_config("tiny_cpu", _overrides(world, name, **extra))


def _strict_json(path: Path) -> dict:
    """Parse as strict JSON: NaN / Infinity are refused (Python's json accepts them by default)."""

    def refuse(token: str) -> None:
        raise ValueError(f"{path} holds {token}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


# ------------------------------------------------------------------------------ 1. resume must match
def test_every_config_field_is_classified_for_resume():
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(RESUME_MUST_MATCH) | set(RESUME_MAY_CHANGE) == fields
    assert not set(RESUME_MUST_MATCH) & set(RESUME_MAY_CHANGE)


def test_resume_refuses_a_checkpoint_of_another_run(world):
    root, _, other_base, _, other_data = world
    first = train(_cfg(world, "refuse", max_steps=3))
    ckpt = root / "refuse" / "checkpoints" / "step_00000003"
    before = (ckpt / "state.json").read_text()
    adapter_before = (first.adapter_dir / "adapter_metadata.json").read_text()

    def refused(**extra: object) -> str:
        items = _overrides(world, "refuse", max_steps=6, **extra)
        with pytest.raises(ValueError, match="cannot resume from checkpoint") as info:
            train(load_config("tiny_cpu", items))
        message = str(info.value)
        assert str(ckpt) in message and "--set output_dir=" in message
        return message

    message = refused(base_model=other_base)
    assert re.search(
        r"base_fingerprint \(of base_model\): checkpoint 'sha256:\w+', now 'sha256:\w+'", message
    )
    message = refused(dataset=other_data)
    assert "dataset_manifest_sha256 (of dataset): checkpoint" in message
    assert "train_clips (from dataset and validation_clips): checkpoint '3 clips" in message
    assert "rank: checkpoint 8, now 16" in refused(rank=16)
    message = refused(adapter_type="dora", alpha=4, seed=1, target_modules="[to_q]")
    for line in (
        "adapter_type: checkpoint 'lora', now 'dora'",
        "alpha: checkpoint 8.0, now 4.0",
        "seed: checkpoint 0, now 1",
        "target_modules: checkpoint ['to_q', 'to_k', 'to_v', 'to_out.0', 'ff.net.0.proj', 'ff.net.2'], "
        "now ['to_q']",
    ):
        assert line in message
    assert "global_batch (batch_size x processes x gradient_accumulation): checkpoint 1, now 2" in refused(
        batch_size=2
    )
    # nothing of the refused runs was written
    assert (ckpt / "state.json").read_text() == before
    assert (first.adapter_dir / "adapter_metadata.json").read_text() == adapter_before

    # what may change on resume: length, intervals, logging; and the same global batch split otherwise
    resumed = train(_cfg(world, "refuse", max_steps=5, checkpoint_every=2, log_every=1, validation_every=2))
    assert resumed.steps_done == 5 and resumed.losses[:3] == first.losses


def test_resume_none_is_refused_beside_an_earlier_runs_checkpoints(world):
    """resume=none in a folder with checkpoints would mix two runs (pruning could drop the new one's)."""
    root = world[0]
    train(_cfg(world, "fresh_again", max_steps=6))
    folder = root / "fresh_again" / "checkpoints"
    before = sorted(p.name for p in folder.iterdir())
    refusal = r"resume=none, but .* holds 2 checkpoint\(s\) .*latest step_00000006"
    with pytest.raises(ValueError, match=refusal):
        train(_cfg(world, "fresh_again", max_steps=3, resume="none"))
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written or pruned
    shutil.rmtree(folder)  # what the message offers: then the run starts over
    again = train(_cfg(world, "fresh_again", max_steps=3, resume="none"))
    assert again.steps_done == 3 and sorted(p.name for p in folder.iterdir()) == ["step_00000003"]


def test_old_checkpoint_of_another_rank_is_refused_by_name_not_by_a_tensor_error(world):
    """A checkpoint from before identities were recorded: the adapter shapes still get a clear error."""
    root = world[0]
    train(_cfg(world, "old_ckpt", max_steps=3))
    info_file = root / "old_ckpt" / "checkpoints" / "step_00000003" / "state.json"
    info = json.loads(info_file.read_text())
    info.pop("run", None)
    info.pop("checksums", None)  # recorded since; a checkpoint without identities has none either
    info_file.write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"other shapes than this run's adapter .*another rank"):
        train(_cfg(world, "old_ckpt", max_steps=6, rank=16))


# ------------------------------------------------------------------------------ 2. + 5. config errors
def test_config_errors_name_the_field_and_where_its_value_came_from(tmp_path, capsys):
    from cosmos_ros.cli import main

    assert main(["train", "--config", "tiny_cpu", "--set", "rank=abc"]) == 1
    err = capsys.readouterr().err
    assert "--set rank=abc: config field rank='abc' is invalid; accepted: an integer" in err
    assert "tiny_cpu.yaml" not in err and "invalid literal" not in err
    with pytest.raises(ValueError, match=r"^--set height=60: config field height=60 .*multiple of 16"):
        load_config("tiny_cpu", ["height=60"])
    with pytest.raises(ValueError, match=r"^--set num_frames=8: config field num_frames=8 .*4k\+1"):
        load_config("tiny_cpu", ["num_frames=8"])
    with pytest.raises(ValueError, match=r"^--set alpha=big: .*accepted: a number"):
        load_config("tiny_cpu", ["alpha=big"])
    yaml_file = tmp_path / "mine.yaml"
    yaml_file.write_text("rank: abc\nnum_frames: 9\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(yaml_file))}: config field rank='abc'"):
        load_config(yaml_file)
    with pytest.raises(ValueError, match=r"^--set rank=1.5: config field rank=1.5"):
        load_config(yaml_file, ["rank=1.5"])


def test_num_frames_error_lists_only_values_the_config_accepts(world):
    with pytest.raises(ValueError) as info:
        load_config("tiny_cpu", ["num_frames=5"])
    message = str(info.value)
    accepted = message.split("accepted: ", 1)[1]
    assert accepted.startswith("9, 13, ..., 93") and "cond_frame_probs" in accepted
    # the value the message offers as the way out really trains
    result = train(_cfg(world, "five_frames", num_frames=5, cond_frame_probs="[1, 0]", max_steps=1))
    assert result.steps_done == 1 and math.isfinite(result.losses[0])
    with pytest.raises(ValueError) as info:
        load_config("tiny_cpu", ["num_frames=1", "cond_frame_probs=[1, 0]"])
    assert str(info.value).split("accepted: ", 1)[1].startswith("5, 9, ..., 93")


# ------------------------------------------------------------------------------ 3. re-running a finished run
def test_rerunning_a_finished_run_leaves_its_adapter_and_metrics(world, capsys):
    from cosmos_ros.cli import main

    root = world[0]
    cfg = _cfg(world, "rerun", max_steps=3, validation_clips=1)
    first = train(cfg)
    meta_file = first.adapter_dir / "adapter_metadata.json"
    weights = first.adapter_dir / "pytorch_lora_weights.safetensors"
    meta_text, weights_bytes = meta_file.read_text(), weights.read_bytes()
    first_meta = _strict_json(meta_file)

    again = train(cfg)
    assert _strict_json(meta_file) == first_meta  # was rewritten with "median_step_seconds": NaN
    assert meta_file.read_text() == meta_text and weights.read_bytes() == weights_bytes
    assert again.already_complete and again.adapter_dir == first.adapter_dir and again.steps_done == 3
    assert again.probe_loss_start == first.probe_loss_start and again.losses == first.losses
    argv = ["train", "--config", "tiny_cpu", "--no-progress"]
    for item in _overrides(world, "rerun", max_steps=3, validation_clips=1):
        argv += ["--set", item]
    assert main(argv) == 0
    assert "run already complete" in capsys.readouterr().out
    assert meta_file.read_text() == meta_text

    # the adapter lost after the last checkpoint: written again from it, with the original run's metrics
    shutil.rmtree(first.adapter_dir)
    rebuilt = train(cfg)
    assert not rebuilt.already_complete
    meta = _strict_json(meta_file)
    # byte for byte: the trainer sorts the safetensors metadata, which safetensors writes in hash order
    assert weights.read_bytes() == weights_bytes
    for key in ("probe_loss_start", "probe_loss_end", "final_loss", "median_step_seconds", "steps"):
        assert meta["metrics"][key] == first_meta["metrics"][key], key
    assert meta["started_at"] == first_meta["started_at"]

    with pytest.raises(ValueError, match=r"at step 3, past this run's 2 steps .*max_steps to at least 3"):
        train(_cfg(world, "rerun", max_steps=2, validation_clips=1))
    assert (root / "rerun" / "adapter").is_dir()


def test_metrics_json_is_strict_and_cover_the_whole_resumed_run(world):
    straight = train(_cfg(world, "metrics_straight", max_steps=5))
    cfg = _cfg(world, "metrics_resumed", max_steps=5)
    train(cfg, stop_after_steps=2)
    resumed = train(cfg)
    assert resumed.probe_loss_start == straight.probe_loss_start  # the loss before step 1, not at step 2
    meta = _strict_json(resumed.adapter_dir / "adapter_metadata.json")
    assert meta["metrics"]["probe_loss_start"] == straight.probe_loss_start
    assert meta["metrics"]["steps"] == 5 and meta["metrics"]["median_step_seconds"] > 0
    state = _strict_json(Path(cfg.output_dir) / "checkpoints" / "step_00000005" / "state.json")
    assert len(state["step_seconds"]) == 5 and state["losses"] == straight.losses


# ------------------------------------------------------------------------------ 4. Ctrl-C and SIGTERM
def _start(items: list[str], cwd: Path, processes: int = 1, **popen: object) -> subprocess.Popen:
    """``cosmos-ros train --config tiny_cpu`` with ``items`` set, under torchrun for several processes."""
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    cmd = [sys.executable, *(launcher if processes > 1 else []), "-m", "cosmos_ros.cli"]
    cmd += ["train", "--config", "tiny_cpu"]
    for item in items:
        cmd += ["--set", item]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, **popen)


def _wait_for_step(proc: subprocess.Popen, step: int, timeout: float = 120.0) -> tuple[bytes, int]:
    """Read stderr until the progress bar (``train: ... | N/1000``) shows ``step``: what was read, the step.

    Bounded, so a trainer stuck before its steps fails the test instead of hanging it.
    """
    seen, fd, deadline = b"", proc.stderr.fileno(), time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no step {step} in {timeout:.0f} s: {seen.decode(errors='replace')[-3000:]}"
        chunk = os.read(fd, 65536)
        assert chunk, f"trainer ended before it was interrupted: {seen.decode(errors='replace')[-3000:]}"
        seen += chunk
        steps = [int(n) for n in re.findall(rb"train:[^\r\n]*?\|\s*(\d+)/1000", seen)]
        if steps and steps[-1] >= step:
            return seen, steps[-1]


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"]
)
def test_a_stop_signal_writes_a_checkpoint_of_the_current_step_and_says_how_to_resume(
    world, tmp_path, signum, status
):
    # SIGTERM is what a scheduler sends a job it preempts: it must keep the progress as Ctrl-C does.
    root = world[0]
    name = f"stop_{signum.name.lower()}"
    out = root / name
    items = _overrides(world, name, max_steps=1000, checkpoint_every=500)
    # a shell may start background jobs with SIGINT ignored; the child must get it as from a terminal
    proc = _start(items, tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        seen, _ = _wait_for_step(proc, 3)
        proc.send_signal(signum)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = (seen + rest).decode(errors="replace")
    assert proc.returncode == status, err[-3000:]
    ckpts = sorted((out / "checkpoints").iterdir())
    assert len(ckpts) == 1, ckpts  # only the interrupt's checkpoint (checkpoint_every=500)
    state = _strict_json(ckpts[0] / "state.json")
    saved = state["step"]
    assert saved >= 3 and ckpts[0].name == f"step_{saved:08d}" and len(state["losses"]) == saved
    assert f"checkpoint of step {saved}: {ckpts[0]}" in err
    command = err.split("resume with:\n", 1)[1].strip().splitlines()[0]
    words = shlex.split(command)
    assert words[:4] == ["cosmos-ros", "train", "--config", "tiny_cpu"]
    assert [w for w in words[4:] if w != "--set"] == items

    # resuming continues from the saved step, exactly as an uninterrupted run would have trained
    resumed = train(_cfg(world, name, max_steps=saved + 2, checkpoint_every=500))
    assert resumed.steps_done == saved + 2 and resumed.losses[:saved] == state["losses"]
    straight = train(_cfg(world, f"{name}_straight", max_steps=saved + 2, checkpoint_every=500))
    assert resumed.losses == straight.losses


# ------------------------------------------------------------------------------ 4b. SIGTERM under torchrun
def _worker_pids(launcher: subprocess.Popen) -> dict[int, int]:
    """Rank -> pid of the torchrun launcher's workers (its children in /proc, by their RANK)."""
    pids: dict[int, int] = {}
    for pid in Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split():
        with contextlib.suppress(OSError):  # a worker that has just ended
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            rank = [v.removeprefix(b"RANK=") for v in environ if v.startswith(b"RANK=")]
            if rank:
                pids[int(rank[0])] = int(pid)
    return pids


@contextlib.contextmanager
def _two_processes(items: list[str], cwd: Path) -> Iterator[subprocess.Popen]:
    """torchrun with two trainer processes; on a failed check or a timeout the workers are killed too.

    torchrun starts each worker in a session of its own, so killing the launcher alone would leave them
    training (or stuck in a collective) after the test.
    """
    proc = _start(items, cwd, processes=2)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                for pid in _worker_pids(proc).values():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.communicate()


def _traceback_ends(text: str) -> list[str]:
    """The exception line that ends each traceback in ``text``."""
    return re.findall(r"Traceback \(most recent call last\):\n(?:[ \t].*\n)*(.*)", text)


def _interrupt_two_processes(items: list[str], tmp: Path, target: str) -> tuple[str, int, int]:
    """Train in two processes, SIGTERM ``target`` after step 3 (``launcher``, or a worker's rank).

    Returns the launcher's output, its exit status and the last step seen before the signal.
    """
    with _two_processes(items, tmp) as proc:
        seen, step = _wait_for_step(proc, 3)
        os.kill(proc.pid if target == "launcher" else _worker_pids(proc)[int(target)], signal.SIGTERM)
        # Both stop after one step and exit in ~2 s. The bound is below torchrun's shutdown timeout (30 s,
        # then it SIGKILLs its workers), so a process stuck in a collective fails here, not silently there.
        _, rest = proc.communicate(timeout=25)
    return (seen + rest).decode(errors="replace"), proc.returncode, step


def _interruption_checkpoint(out: Path, step_seen: int, err: str) -> dict:
    """The one checkpoint of the interrupted run (checkpoint_every=500), announced once, by rank 0."""
    ckpts = sorted((out / "checkpoints").iterdir())
    assert len(ckpts) == 1, ckpts
    state = _strict_json(ckpts[0] / "state.json")
    saved = state["step"]
    assert saved >= step_seen and ckpts[0].name == f"step_{saved:08d}" and len(state["losses"]) == saved
    assert err.count(f"checkpoint of step {saved}: {ckpts[0]}") == 1, err[-3000:]
    return state


def test_sigterm_to_torchrun_stops_both_processes_at_one_step_and_the_run_resumes(world, tmp_path):
    """A preempted data-parallel job: the scheduler's SIGTERM goes to torchrun, which forwards it to both."""
    name = "stop_torchrun"
    out = world[0] / name
    items = _overrides(world, name, max_steps=1000, checkpoint_every=500)
    err, status, step = _interrupt_two_processes(items, tmp_path, "launcher")
    # torchrun exits 1 of its own (it turns the signal into an exception), not with the workers' 143
    assert status == 1, err[-3000:]
    # no worker traceback; only, if any, torchrun's own for the signal it got
    assert all(line.endswith("got signal: 15") for line in _traceback_ends(err)), err[-3000:]
    state = _interruption_checkpoint(out, step, err)
    saved = state["step"]
    # only the main process draws a bar, announces the signal and says how to resume
    assert err.count("| 0/1000 [") == 1 and err.count("SIGTERM received; finishing this step") == 1
    command, note = err.split("resume with:\n", 1)[1].strip().splitlines()[0].split("   (", 1)
    words = shlex.split(command)
    assert words[:4] == ["cosmos-ros", "train", "--config", "tiny_cpu"] and note.startswith("under the same")
    assert [w for w in words[4:] if w != "--set"] == items

    # resumed in two processes, it trains on from the checkpoint as an uninterrupted run would have
    items = _overrides(world, name, max_steps=saved + 2, checkpoint_every=500, resume="auto")
    with _two_processes(items, tmp_path) as proc:
        _, resumed_err = proc.communicate(timeout=120)
    resumed_text = resumed_err.decode(errors="replace")
    assert proc.returncode == 0, resumed_text[-3000:]
    assert f"resumed from {out / 'checkpoints' / f'step_{saved:08d}'} at step {saved}" in resumed_text
    final = _strict_json(out / "checkpoints" / f"step_{saved + 2:08d}" / "state.json")
    assert final["losses"][:saved] == state["losses"]  # carried over, bit for bit
    assert final["step_seconds"][:saved] == state["step_seconds"]  # resumed, not trained again from step 0
    # one process with the doubled batch trains on the same samples; gloo only changes the summation order
    straight = train(_cfg(world, f"{name}_straight", max_steps=saved + 2, checkpoint_every=500, batch_size=2))
    assert final["losses"] == pytest.approx(straight.losses, rel=1e-5)


def test_sigterm_to_one_worker_stops_every_process_after_the_same_step(world, tmp_path):
    """Only rank 1 gets the signal (as on a preempted node of a multi-node job): rank 0 must stop with it.

    It is the stop flag shared in each step's all-reduce that tells rank 0; without it rank 1 would leave
    the loop alone, rank 0 would run into the next step's collective, and the run would hang or fail.
    """
    name = "stop_one_worker"
    items = _overrides(world, name, max_steps=1000, checkpoint_every=500)
    err, status, step = _interrupt_two_processes(items, tmp_path, "1")
    assert status == 1, err[-3000:]  # torchrun's "child failed": the workers ended with 143
    assert all(line.endswith("ChildFailedError: ") for line in _traceback_ends(err)), err[-3000:]
    _interruption_checkpoint(world[0] / name, step, err)
    assert "resume with:\n" in err
    # torchrun's report of its workers: each exited 128 + SIGTERM (rank 0 too, which got no signal), or
    # was ended by torchrun's own SIGTERM (-15) when it saw the other one exit first
    codes = re.findall(r"exitcode\s+:\s+(-?\d+)", err)
    assert len(codes) == 2 and set(codes) <= {"143", "-15"}, err[-3000:]
