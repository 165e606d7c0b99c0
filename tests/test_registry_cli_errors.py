"""`cosmos-ros adapters` (and `make-tiny-model`) on bad input, narrow terminals and closed pipes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from model_helpers import tiny_model_dir  # noqa: F401 - a session fixture, used by name
from registry_helpers import BASE_FP, assert_clean_error, make_adapter_folder, run

from cosmos_ros.cli import main
from cosmos_ros.model.fingerprint import model_fingerprint
from cosmos_ros.model.tiny import TINY_MODEL_ENTRIES, make_tiny_model


@pytest.fixture()
def bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A real bundle exported from a real registry."""
    reg = str(tmp_path / "site-a")
    assert (
        run(
            capsys,
            "register",
            str(make_adapter_folder(tmp_path / "a", seed=1)),
            "arm.pick",
            "--registry",
            reg,
        )[0]
        == 0
    )
    out = tmp_path / "bundle.tar"
    assert run(capsys, "export", "arm.pick@1", "-o", str(out), "--registry", reg)[0] == 0
    return out


def _rewrite(good: Path, bad: Path, edit: Callable[[str, bytes], tuple[str, bytes] | None]) -> Path:
    """Copy a bundle member by member through ``edit`` (which may rename, change or drop one)."""
    with tarfile.open(good) as src, tarfile.open(bad, "w") as dst:
        for info in src.getmembers():
            stream = src.extractfile(info)
            assert stream is not None
            edited = edit(info.name, stream.read())
            if edited is not None:
                name, data = edited
                new = tarfile.TarInfo(name)
                new.size = len(data)
                dst.addfile(new, io.BytesIO(data))
    return bad


def _truncated(good: Path, bad: Path) -> Path:
    bad.write_bytes(good.read_bytes()[:5000])  # `head -c 5000`: cut inside the artifact
    return bad


def _truncated_gzip(good: Path, bad: Path) -> Path:
    bad.write_bytes(gzip.compress(good.read_bytes())[:2000])
    return bad


def _not_a_tar(good: Path, bad: Path) -> Path:
    bad.write_bytes(b"definitely not a tar archive" * 40)
    return bad


def _no_artifact(good: Path, bad: Path) -> Path:
    return _rewrite(good, bad, lambda name, data: None if name.startswith("artifact/") else (name, data))


def _no_manifest(good: Path, bad: Path) -> Path:
    return _rewrite(good, bad, lambda name, data: None if name == "bundle.json" else (name, data))


def _flipped_byte(good: Path, bad: Path) -> Path:
    def edit(name: str, data: bytes) -> tuple[str, bytes]:
        return (name, data[:-1] + bytes([data[-1] ^ 1])) if name.startswith("artifact/") else (name, data)

    return _rewrite(good, bad, edit)


def _pickle_artifact(good: Path, bad: Path) -> Path:
    """Pickle bytes with a manifest that agrees on their hash: only the format check refuses them."""
    payload = b"\x80\x04\x95" + b"cos\nsystem\n(S'echo pwned'\ntR." + b"\0" * 32
    digest = hashlib.sha256(payload).hexdigest()

    def edit(name: str, data: bytes) -> tuple[str, bytes]:
        if name != "bundle.json":
            return f"artifact/{digest}.safetensors", payload
        manifest = json.loads(data)
        manifest["record"].update(artifact_sha256=digest, artifact_size=len(payload))
        manifest["artifact"] = f"artifact/{digest}.safetensors"
        return name, json.dumps(manifest).encode()

    return _rewrite(good, bad, edit)


def _missing(good: Path, bad: Path) -> Path:
    return bad.parent / "nothing-here.tar"


BAD_BUNDLES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "truncated": (_truncated, "is not a complete adapter bundle (truncated or not a bundle): unexpected end"),
    "truncated gzip": (_truncated_gzip, "is not a complete adapter bundle (truncated or not a bundle)"),
    "not a tar": (_not_a_tar, "is not a readable bundle archive"),
    "no artifact member": (_no_artifact, "expected exactly the artifact member"),
    "no manifest": (_no_manifest, "no bundle.json"),
    "checksum mismatch": (_flipped_byte, "(damaged or tampered); nothing imported"),
    "pickle artifact": (_pickle_artifact, "not a valid safetensors file"),
    "missing file": (_missing, "not found"),
}


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_bad_bundle_import_is_one_clean_line_and_creates_no_registry(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make_bad, message = BAD_BUNDLES[case]
    bad = make_bad(bundle, tmp_path / "cut.tar")
    new_registry = tmp_path / "reg3"
    code, _, err = run(capsys, "import", str(bad), "--registry", str(new_registry))
    assert_clean_error(code, err, str(bad), message)
    assert not new_registry.exists()  # no empty registry (blobs/, registry.sqlite3) left behind

    existing = str(tmp_path / "site-b")
    assert run(capsys, "list", "--registry", existing)[0] == 0
    code, _, err = run(capsys, "import", str(bad), "--registry", existing)
    assert_clean_error(code, err, message)
    assert run(capsys, "verify", "--registry", existing)[0] == 0  # no blob, no temporary file
    assert json.loads(run(capsys, "log", "--registry", existing, "--json")[1]) == []


def test_good_bundle_still_imports(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "import", str(bundle), "--registry", str(tmp_path / "reg3"))
    assert code == 0 and "imported arm.pick@1" in out


# ---- adapters list: 80 columns, wide terminals, pipes --------------------------------------------------
HEADERS = ("adapter", "status", "type", "base", "eval", "created", "by", "parent", "sha256")


@pytest.fixture()
def listed_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    reg = str(tmp_path / "r")
    first = make_adapter_folder(tmp_path / "a", seed=1)
    run(capsys, "register", str(first), "ur5e.pick-place", "--registry", reg, "--by", "alice.robotics")
    run(capsys, "register", str(make_adapter_folder(tmp_path / "b", seed=2)), "ur5e.pick-place",
        "--registry", reg, "--parent", "ur5e.pick-place@1", "--by", "someone.with.a.long.name")  # fmt: skip
    bare = make_adapter_folder(tmp_path / "c", seed=3, with_metadata=False)
    run(capsys, "register", str(bare), "go2.walk", "--registry", reg)
    return reg


def _header_words(out: str) -> list[str]:
    header = next(line for line in out.splitlines() if line.split()[:1] == ["adapter"])
    return header.split()


def test_list_at_80_columns_keeps_headers_and_ids_whole(
    listed_registry: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "list", "--registry", listed_registry)
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert _header_words(out) == ["adapter", "status", "type", "base", "eval", "created", "by"], out
    for adapter_id in ("ur5e.pick-place@1", "ur5e.pick-place@2", "go2.walk@1"):
        assert adapter_id in out, out
    assert "parent and sha256 left out at this width" in out
    rows = [
        line for line in out.splitlines() if line[:1].isalnum() and not line.startswith(("adapter", "parent"))
    ]
    assert [row.split()[0] for row in rows] == ["go2.walk@1", "ur5e.pick-place@1", "ur5e.pick-place@2"], out
    assert "someone.…" in rows[-1]  # a long name is cut with an ellipsis, not wrapped over lines


def test_list_on_a_wide_terminal_and_piped_shows_every_column_one_line_per_record(
    listed_registry: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "140")
    code, out, _ = run(capsys, "list", "--registry", listed_registry)
    assert code == 0 and _header_words(out) == list(HEADERS) and "left out" not in out, out
    assert max(len(line) for line in out.splitlines()) <= 140

    monkeypatch.delenv("COLUMNS")  # captured stdout is not a terminal: the piped case
    code, out, _ = run(capsys, "list", "--registry", listed_registry)
    assert code == 0 and _header_words(out) == list(HEADERS), out
    row = next(line for line in out.splitlines() if line.startswith("ur5e.pick-place@2"))
    assert "someone.with.a.long.name" in row and "ur5e.pick-place@1" in row  # nothing folded
    assert "none" in next(line for line in out.splitlines() if line.startswith("go2.walk@1"))


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_closed_stdout_exits_quietly(listed_registry: str, as_json: bool) -> None:
    """`cosmos-ros adapters list --json | head -1`: the reader is gone before anything is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "cosmos_ros.cli", "adapters", "list", "--registry", listed_registry]
            + (["--json"] if as_json else []),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_head_in_a_shell_pipeline(listed_registry: str) -> None:
    command = (
        f"'{sys.executable}' -m cosmos_ros.cli adapters list --json --registry '{listed_registry}' | head -1"
    )
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout == "[\n", proc
    assert "Traceback" not in proc.stderr, proc.stderr


# ---- register: no base fingerprint, --base-model, --by ------------------------------------------------
def test_register_without_base_fingerprint_warns_and_says_how_to_give_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = str(tmp_path / "r")
    run_dir = tmp_path / "run1"
    make_adapter_folder(run_dir / "adapter", seed=1)  # the run's final adapter, with metadata
    step = make_adapter_folder(run_dir / "checkpoints" / "step_00000003", seed=2, with_metadata=False)
    checkpoint = step / "adapter.safetensors"
    (step / "pytorch_lora_weights.safetensors").rename(checkpoint)

    code, out, err = run(capsys, "register", str(checkpoint), "arm_ck", "--registry", reg, "--json")
    assert code == 0 and json.loads(out)["base_fingerprint"] is None  # stdout stays valid JSON
    assert "cosmos-ros: warning: arm_ck@1 records no base-model fingerprint" in err
    assert "cannot be checked against a base model" in err and "--base-model MODEL_DIR" in err
    assert f"of the same run records {BASE_FP}" in err  # where to find the right value

    beside = make_adapter_folder(tmp_path / "folder", seed=3) / "pytorch_lora_weights.safetensors"
    code, _, err = run(capsys, "register", str(beside), "arm_ck", "--registry", reg)
    assert code == 0 and f"or register the folder {beside.parent}" in err

    code, _, err = run(capsys, "register", str(beside.parent), "arm_ck", "--registry", reg)
    assert code == 0 and "warning" not in err  # the folder's metadata carries the fingerprint


def test_register_base_model_records_its_fingerprint(
    tiny_model_dir: Path,  # noqa: F811 - the fixture
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reg = str(tmp_path / "r")
    bare = make_adapter_folder(tmp_path / "bare", with_metadata=False)
    code, out, err = run(
        capsys, "register", str(bare), "arm", "--registry", reg, "--base-model", str(tiny_model_dir), "--json"
    )
    assert code == 0 and "warning" not in err
    assert json.loads(out)["base_fingerprint"] == model_fingerprint(tiny_model_dir)

    code, _, err = run(capsys, "register", str(bare), "arm", "--registry", reg, "--base-model", str(tmp_path))
    assert_clean_error(code, err, f"--base-model {tmp_path}", "no model_index.json", "model_index.json)")
    assert len(json.loads(run(capsys, "list", "--registry", reg, "--json")[1])) == 1  # nothing registered
    fresh = str(tmp_path / "fresh")
    code, _, err = run(capsys, "register", str(bare), "arm", "--registry", fresh, "--base-model", "nowhere")
    assert_clean_error(code, err, "--base-model nowhere")
    code, _, err = run(capsys, "register", str(tmp_path / "missing"), "arm", "--registry", fresh)
    assert_clean_error(code, err, "adapter not found")
    assert not Path(fresh).exists()  # refused before the registry was opened (and so created)

    with pytest.raises(SystemExit) as both:
        main(["adapters", "register", str(bare), "arm", "--registry", reg,
              "--base-model", str(tiny_model_dir), "--base-fingerprint", BASE_FP])  # fmt: skip
    assert both.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_register_takes_by_and_still_the_old_created_by(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = str(tmp_path / "r")
    folder = str(make_adapter_folder(tmp_path / "a"))
    code, out, err = run(capsys, "register", folder, "arm", "--registry", reg, "--by", "alice", "--json")
    assert code == 0 and json.loads(out)["created_by"] == "alice" and "deprecated" not in err
    code, out, err = run(
        capsys, "register", folder, "arm", "--registry", reg, "--created-by", "bob", "--json"
    )
    assert code == 0 and json.loads(out)["created_by"] == "bob"
    assert "cosmos-ros: warning: --created-by is deprecated; use --by" in err
    log = json.loads(run(capsys, "log", "--registry", reg, "--json")[1])
    assert [entry["actor"] for entry in log] == ["alice", "bob"]

    with pytest.raises(SystemExit):
        main(["adapters", "register", "--help"])
    shown = capsys.readouterr().out
    assert "--by" in shown and "--created-by" not in shown


# ---- make-tiny-model --overwrite ---------------------------------------------------------------------
def test_make_tiny_model_overwrite_keeps_other_peoples_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """(Lives here because it is the same kind of CLI guard; make-tiny-model is cosmos_ros.model.)"""
    folder = tmp_path / "imp2"
    folder.mkdir()
    (folder / "n.txt").write_text("keep\n")
    code = main(["make-tiny-model", str(folder), "--overwrite"])
    err = capsys.readouterr().err
    assert_clean_error(code, err, "--overwrite refuses to delete a folder that holds other things: n.txt")
    assert (folder / "n.txt").read_text() == "keep\n" and sorted(p.name for p in folder.iterdir()) == [
        "n.txt"
    ]

    model = make_tiny_model(tmp_path / "tiny", seed=0)
    assert sorted(p.name for p in model.iterdir()) == sorted(
        TINY_MODEL_ENTRIES
    )  # the list --overwrite trusts
    assert main(["make-tiny-model", str(model), "--overwrite", "--seed", "1"]) == 0  # an earlier tiny model
    assert json.loads((model / "cosmos_ros_model.json").read_text())["seed"] == 1
    capsys.readouterr()

    (model / "cosmos_ros_model.json").unlink()  # now it looks like a real model directory
    code = main(["make-tiny-model", str(model), "--overwrite"])
    assert_clean_error(code, capsys.readouterr().err, "is not a tiny model", "cosmos_ros_model.json")
    assert (model / "transformer").is_dir()

    code = main(["make-tiny-model", str(folder)])
    assert_clean_error(code, capsys.readouterr().err, "exists and is not empty", "--overwrite")
