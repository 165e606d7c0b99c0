"""The adapter folder's model card and ``cosmos-ros train --json`` (issue 20).

A trained adapter folder carries a Hub model card (``README.md``) whose YAML front matter names the
base, the library, tags and validation results; ``train --json`` prints one JSON document holding
the figures the text summary shows. Both run the real CLI on the tiny random model.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from train_helpers import TINY_FRAMES, TINY_H, TINY_W, make_plain_dataset, one_thread, tiny_overrides

from cosmos_ros.cli import main

_threads = pytest.fixture(autouse=True)(one_thread)

HUB_ID = "nvidia/Cosmos-Predict2.5-2B"
BAGS = {"clip_00": "/bags/run1.bag", "clip_01": "/bags/run1.bag", "clip_02": "/bags/run2"}


def _bag_dataset(root: Path) -> Path:
    """The plain fixture clips plus a manifest that says which bag each came from (clip_02 is val)."""
    from cosmos_ros.bag_tools.dataset_format import ClipRecord, DatasetInfo, write_dataset

    make_plain_dataset(root, clips=3)
    records = [
        ClipRecord(
            clip_id=clip,
            video=f"videos/{clip}.mp4",
            meta=f"metas/{clip}.txt",
            prompt=(root / "metas" / f"{clip}.txt").read_text(encoding="utf-8").strip(),
            frame_count=TINY_FRAMES,
            height=TINY_H,
            width=TINY_W,
            fps=16.0,
            split="val" if clip == "clip_02" else "train",
            source_bag=bag,
            source_bag_sha256=f"{len(bag):064x}",
        )
        for clip, bag in BAGS.items()
    ]
    write_dataset(root, records, DatasetInfo())
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny base in a Hub-cache snapshot (whose card states the license) and a bag-made dataset."""
    from cosmos_ros.model.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("card")
    snapshot = root / "hub" / "models--nvidia--Cosmos-Predict2.5-2B" / "snapshots" / "0123abcd"
    base = make_tiny_model(snapshot / "diffusers" / "base" / "post-trained", seed=0)
    (snapshot / "README.md").write_text(
        "---\nlicense: other\nlicense_name: nvidia-open-model-license\nlibrary_name: cosmos\n---\n# Cosmos\n",
        encoding="utf-8",
    )
    return root, Path(base), _bag_dataset(root / "data")


def _train(
    world, out: str, capsys: pytest.CaptureFixture[str], *flags: str, **extra: object
) -> tuple[int, str, str]:
    root, base, data = world
    items = tiny_overrides(base, data, root / out, root / "cache", max_steps=4, checkpoint_every=100, **extra)
    argv = ["train", "--config", "tiny_cpu", "--no-progress", *flags]
    for item in items:
        argv += ["--set", item]
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _card(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S)
    assert match, text[:200]
    return yaml.safe_load(match.group(1)), match.group(2)


def test_train_json_matches_text_and_the_card_describes_the_adapter(world, capsys, tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    code, out, err = _train(world, "js", capsys, "--json", registry=registry, adapter_name="tiny-card")
    assert code == 0, err
    data = json.loads(out)  # the whole of stdout is one document
    adapter = world[0] / "js" / "adapter"
    assert data["ok"] is True and data["already_complete"] is False
    assert data["adapter"] == str(adapter) and data["output_dir"] == str(world[0] / "js")
    assert data["steps"] == 4 and data["adapter_type"] == "lora"
    meta = json.loads((adapter / "adapter_metadata.json").read_text())
    assert data["final_loss"] == meta["metrics"]["final_loss"]
    assert 0 < data["best_loss"] <= data["final_loss"]
    assert set(data["validation"]) == {"val_loss", "val_psnr", "val_ssim"}
    assert data["validation"]["val_psnr"] == meta["metrics"]["val_psnr"]
    assert data["registered_as"] == "tiny-card@1" and data["registered_now"] is True
    assert data["registry"] == str(registry)

    code, text, _ = _train(world, "text", capsys, registry=tmp_path / "registry2", adapter_name="tiny-card")
    assert code == 0
    head = re.search(r"^adapter written to (.+) \((\d+) steps, final loss (\S+)\)$", text, re.M)
    assert head is not None, text
    assert int(head.group(2)) == data["steps"]
    assert float(head.group(3)) == float(f"{data['final_loss']:.4g}")  # same seed, same run
    assert re.search(r"^registered as tiny-card@1 \(", text, re.M), text

    front, body = _card(adapter)
    assert front["base_model"] == HUB_ID and front["library_name"] == "diffusers"
    assert front["license"] == "other" and front["license_name"] == "nvidia-open-model-license"
    assert {"lora", "cosmos", "robotics"} <= set(front["tags"]) and "dora" not in front["tags"]
    (entry,) = front["model-index"]
    assert entry["name"] == "tiny-card"
    metrics = {m["type"]: m["value"] for m in entry["results"][0]["metrics"]}
    assert metrics["psnr"] == pytest.approx(data["validation"]["val_psnr"], abs=1e-5)
    assert metrics["ssim"] == pytest.approx(data["validation"]["val_ssim"], abs=1e-5)
    provenance = front["cosmos_ros"]
    assert provenance["dataset_manifest_sha256"] == meta["dataset_manifest_sha256"]
    assert provenance["source_bags"] == ["/bags/run1.bag", "/bags/run2"]
    assert provenance["base_fingerprint"] == meta["base_fingerprint"]
    for line in (
        "| rank | 8 |",
        "| alpha | 8.0 |",
        "| steps | 4 |",
        "| learning rate | 0.003 |",
        "| seed | 0 |",
    ):
        assert line in body, body
    assert "clips: 3 (train: 2, val: 1)" in body and "`/bags/run2`" in body
    assert "license of the base model (nvidia-open-model-license) applies" in body
    # The card came with the folder: no temporary leftovers beside it.
    assert sorted(p.name for p in adapter.parent.iterdir() if p.name.startswith(".")) == []


def test_train_json_of_a_finished_run_says_so(world, capsys) -> None:
    code, out, err = _train(world, "again", capsys, "--json", validation_clips=0)
    assert code == 0, err
    first = json.loads(out)
    code, out, err = _train(world, "again", capsys, "--json", validation_clips=0)
    assert code == 0, err
    data = json.loads(out)
    assert first["already_complete"] is False and data["already_complete"] is True and data["steps"] == 4
    assert data["best_loss"] == first["best_loss"] and data["final_loss"] == first["final_loss"]
    assert data["registered_as"] is None and data["adapter"] == str(world[0] / "again" / "adapter")
    front, _ = _card(Path(data["adapter"]))
    assert front["base_model"] == HUB_ID and "adapter written" not in out


def test_base_model_id_from_card_path_or_folder(tmp_path: Path) -> None:
    from cosmos_ros.training.model_card import base_model_id

    plain = tmp_path / "my-base"
    plain.mkdir()
    assert base_model_id(plain) == "my-base"
    download = tmp_path / "Cosmos-Predict2.5-2B" / "diffusers" / "base" / "post-trained"
    download.mkdir(parents=True)
    assert base_model_id(download) == "Cosmos-Predict2.5-2B"
    (tmp_path / "Cosmos-Predict2.5-2B" / "README.md").write_text(
        "---\nmodel-index:\n- name: acme/Cosmos-Predict2.5-2B-robot\n---\n", encoding="utf-8"
    )
    assert base_model_id(download) == "acme/Cosmos-Predict2.5-2B-robot"


def test_card_without_validation_has_no_results_and_dora_tags() -> None:
    from cosmos_ros.training.model_card import model_card

    from cosmos_ros.model.adapter_folder import AdapterMetadata

    meta = AdapterMetadata(
        adapter_type="dora",
        rank=4,
        alpha=2.0,
        dataset_path="/nowhere/ds",
        training_config={"base_model": "/models/base-x", "learning_rate": 1e-4, "seed": 7, "max_steps": 9},
        metrics={"steps": 9, "final_loss": 0.5, "val_psnr": float("nan")},
    )
    card = model_card(meta)
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["base_model"] == "base-x" and "model-index" not in front and "license" not in front
    assert front["tags"][:2] == ["dora", "lora"]
    assert front["cosmos_ros"]["source_bags"] == []
    assert "# base-x-dora" in card and "| seed | 7 |" in card and "license of the base model applies" in card


def test_train_json_of_an_interrupted_run_names_its_checkpoint(world, tmp_path: Path) -> None:
    """Ctrl-C under --json: exit 130 as without it, stdout one document naming the checkpoint."""
    root, base, data = world
    out = tmp_path / "stopped"
    items = tiny_overrides(
        base, data, out, root / "cache", max_steps=1000, checkpoint_every=500, validation_clips=0
    )
    cmd = [sys.executable, "-m", "cosmos_ros.cli", "train", "--config", "tiny_cpu", "--json"]
    for item in items:
        cmd += ["--set", item]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        seen, fd, deadline = b"", proc.stderr.fileno(), time.monotonic() + 120
        while not re.search(rb"\|\s*[3-9]\d*/1000", seen):  # the progress bar (stderr) at step >= 3
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 65536) if ready else b""
            assert chunk, f"no step 3 before the trainer stopped or 120 s passed: {seen[-2000:]!r}"
            seen += chunk
        proc.send_signal(signal.SIGINT)
        stdout, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = (seen + rest).decode(errors="replace")
    assert proc.returncode == 130, err[-2000:]
    summary = json.loads(stdout)
    assert summary["ok"] is False and summary["interrupted"] is True and summary["output_dir"] == str(out)
    (checkpoint,) = (out / "checkpoints").iterdir()
    assert (
        summary["checkpoint"] == str(checkpoint)
        and checkpoint.name == f"step_{summary['checkpoint_step']:08d}"
    )
    assert f"checkpoint of step {summary['checkpoint_step']}: {checkpoint}" in err
    assert summary["resume_command"] in err and summary["resume_command"].endswith("--json")
