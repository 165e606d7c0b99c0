# ruff: noqa: F811  (pytest fixtures imported from model_helpers are redefined as arguments)
"""`cosmos-ros model verify` (issue 19): a bit flipped in a base weight file is found and named.

The fingerprint samples large weight files, so a flip between its samples used to run unnoticed;
the manifest holds every file's full sha256, and each load checks its sizes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from model_helpers import tiny_model_dir  # noqa: F401

from cosmos_ros.cli import main

WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


def _flip_a_data_byte(path: Path) -> None:
    """Flip one bit in the tensor data (the header stays intact, as does the file's size)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_verify_records_once_then_names_each_file_that_differs(tiny_model_dir, tmp_path, capsys):
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    assert main(["model", "verify", str(model)]) == 1  # nothing to compare with yet: says how to record
    assert f"no manifest at {model / 'cosmos_ros_manifest.json'}" in capsys.readouterr().err
    assert main(["model", "verify", str(model), "--write"]) == 0
    assert "recorded" in capsys.readouterr().out
    manifest = json.loads((model / "cosmos_ros_manifest.json").read_text())
    assert manifest["files"][WEIGHTS]["sha256"] == hashlib.sha256((model / WEIGHTS).read_bytes()).hexdigest()
    assert main(["model", "verify", str(model)]) == 0
    assert "files match" in capsys.readouterr().out

    _flip_a_data_byte(model / WEIGHTS)
    (model / "vae" / "config.json").unlink()
    (model / "transformer" / "extra.json").write_text("{}")
    assert main(["model", "verify", str(model)]) == 1
    captured = capsys.readouterr()
    assert f"  {WEIGHTS}: content differs (sha256 mismatch)" in captured.out
    assert "  vae/config.json: missing" in captured.out
    assert "  transformer/extra.json: not in the manifest" in captured.out
    error = captured.err.strip().splitlines()[-1]  # after the progress bar
    assert (
        error.startswith("cosmos-ros: error: ")
        and "3 file(s) differ" in error
        and "Traceback" not in captured.err
    )


def test_loading_checks_the_manifests_sizes(tiny_model_dir, tmp_path, capsys):
    import cv2
    import numpy as np

    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    assert main(["model", "verify", str(model), "--write"]) == 0
    config = model / "vae" / "config.json"
    config.write_text(config.read_text() + "\n")  # still valid JSON, another size
    image = tmp_path / "cam.png"
    cv2.imwrite(str(image), np.full((40, 60, 3), 128, np.uint8))
    out = tmp_path / "p.mp4"
    args = ["predict", "--model", str(model), "--image", str(image), "--prompt", "x", "-o", str(out),
            "--safety-checker", "off"]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 1
    error = capsys.readouterr().err
    assert f"{config} is " in error and "run: cosmos-ros model verify" in error and "Traceback" not in error
    assert not out.exists()


def test_a_manifest_kept_elsewhere_and_a_hub_cache_snapshot(tiny_model_dir, tmp_path, capsys):
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    manifest = tmp_path / "elsewhere" / "manifest.json"
    assert main(["model", "verify", str(model), "--write", "--manifest", str(manifest)]) == 0
    assert manifest.is_file() and not (model / "cosmos_ros_manifest.json").exists()
    assert main(["model", "verify", str(model), "--manifest", str(manifest)]) == 0

    # The hub cache keeps large files as blobs named by their sha256, linked from the snapshot.
    blobs, snapshot = tmp_path / "hub" / "blobs", tmp_path / "hub" / "snapshots" / "abc"
    blobs.mkdir(parents=True)
    shutil.copytree(model, snapshot)
    for weights in sorted(snapshot.rglob("*.safetensors")):
        blob = blobs / hashlib.sha256(weights.read_bytes()).hexdigest()
        weights.rename(blob)
        os.symlink(os.path.relpath(blob, weights.parent), weights)
    capsys.readouterr()
    assert main(["model", "verify", str(snapshot)]) == 0
    assert "the hub cache's blob names" in capsys.readouterr().out
    _flip_a_data_byte((snapshot / WEIGHTS).resolve())
    assert main(["model", "verify", str(snapshot)]) == 1
    assert f"{WEIGHTS}: content differs" in capsys.readouterr().out


@pytest.mark.parametrize("target", ["missing", "file", "not-a-manifest"])
def test_verify_errors_are_one_line(tiny_model_dir, tmp_path, capsys, target):
    model = tiny_model_dir
    args = ["model", "verify", str(model)]
    if target == "missing":
        args[2] = str(tmp_path / "nope")
    elif target == "file":
        (tmp_path / "f").write_text("x")
        args[2] = str(tmp_path / "f")
    else:
        (tmp_path / "m.json").write_text("[1, 2]")
        args += ["--manifest", str(tmp_path / "m.json")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("cosmos-ros: error: ") and "Traceback" not in err, err
