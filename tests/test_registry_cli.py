"""`cosmos-ros adapters`: the whole governance workflow through the command line."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from registry_helpers import BASE_FP, eval_results, flip_one_byte, make_adapter_folder, run

from cosmos_ros.cli import main


def test_workflow_register_approve_export_import_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg_a, reg_b = str(tmp_path / "a"), str(tmp_path / "b")
    folder = make_adapter_folder(tmp_path / "adapter", seed=1)
    config = tmp_path / "train.yaml"
    config.write_text("lr: 0.0002\nsteps: 500\n")
    code, out, _ = run(
        capsys, "register", str(folder), "ur5e.pick", "--registry", reg_a, "--by", "alice",
        "--tag", "site=lab2", "--training-config", str(config), "--rank", "4", "--json",
    )  # fmt: skip
    assert code == 0
    registered = json.loads(out)
    assert registered["adapter_id"] == "ur5e.pick@1" and registered["training_config"] == {
        "lr": 0.0002,
        "steps": 500,
    }

    code, out, _ = run(capsys, "list", "--registry", reg_a)
    assert code == 0 and "ur5e.pick@1" in out and "draft" in out

    assert run(capsys, "promote", "ur5e.pick", "--registry", reg_a, "--note", "ready")[0] == 0
    code, _, err = run(capsys, "approve", "ur5e.pick@1", "--registry", reg_a, "--note", "ship it")
    assert code == 1 and "no evaluation results" in err
    results = tmp_path / "metrics.json"
    results.write_text(json.dumps(eval_results(psnr=99.5)))
    assert run(capsys, "attach-eval", "ur5e.pick@1", str(results), "--registry", reg_a, "--by", "ci")[0] == 0
    code, out, _ = run(
        capsys, "approve", "ur5e.pick@1", "--registry", reg_a, "--note", "ship it", "--by", "bob"
    )
    assert code == 0 and "approved" in out

    code, out, _ = run(capsys, "show", "ur5e.pick@approved", "--registry", reg_a, "--json")
    shown = json.loads(out)
    assert shown["status"] == "approved"
    assert shown["evaluations"][0]["results"]["metrics"]["psnr"]["mean"] == 99.5

    bundle = tmp_path / "pick.tar"
    assert run(capsys, "export", "ur5e.pick@1", "-o", str(bundle), "--registry", reg_a)[0] == 0
    assert run(capsys, "import", str(bundle), "--registry", reg_b)[0] == 0
    code, out, _ = run(capsys, "show", "ur5e.pick@1", "--registry", reg_b, "--json")
    imported = json.loads(out)  # the approval is the exporter's word, not this registry's
    assert imported["status"] == "candidate" and imported["evaluations"] == []
    assert imported["provenance"]["exporter_status"] == "approved"
    assert imported["artifact_sha256"] == shown["artifact_sha256"]
    assert run(capsys, "attach-eval", "ur5e.pick@1", str(results), "--registry", reg_b)[0] == 0
    assert run(capsys, "approve", "ur5e.pick@1", "--registry", reg_b, "--note", "our gate")[0] == 0

    folder2 = make_adapter_folder(tmp_path / "adapter2", seed=2)
    run(capsys, "register", str(folder2), "ur5e.pick", "--registry", reg_b, "--parent", "ur5e.pick@1")
    code, out, _ = run(capsys, "diff", "ur5e.pick@1", "ur5e.pick@2", "--registry", reg_b, "--json")
    keys = {row["key"] for row in json.loads(out)}
    assert {"training_config.steps", "parent", "status", "artifact_sha256"} <= keys

    code, out, _ = run(capsys, "log", "ur5e.pick@1", "--registry", reg_b, "--json")
    assert [entry["action"] for entry in json.loads(out)] == ["import", "evaluation", "status:approved"]

    assert run(capsys, "verify", "--registry", reg_b)[0] == 0
    flip_one_byte(Path(reg_b) / "blobs" / "sha256" / f"{shown['artifact_sha256']}.safetensors")
    code, out, _ = run(capsys, "verify", "--registry", reg_b, "--json")
    assert code == 1 and [p["kind"] for p in json.loads(out)] == ["hash_mismatch"]

    code, out, _ = run(
        capsys, "list", "--registry", reg_b, "--status", "approved", "--base", BASE_FP, "--json"
    )
    assert [r["adapter_id"] for r in json.loads(out)] == ["ur5e.pick@1"]


def test_user_errors_are_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = str(tmp_path / "r")
    folder = make_adapter_folder(tmp_path / "adapter")
    code, _, err = run(capsys, "register", str(folder), "ur5e/pick", "--registry", reg)
    assert code == 1 and "path separator" in err and "Traceback" not in err
    code, _, err = run(capsys, "show", "nothing@1", "--registry", reg)
    assert code == 1 and "no adapter named 'nothing'" in err
    code, _, err = run(capsys, "register", str(tmp_path / "missing"), "x", "--registry", reg)
    assert code == 1 and "not found" in err
    (tmp_path / "bad.json").write_text("[1, 2]")
    run(capsys, "register", str(folder), "x", "--registry", reg)
    code, _, err = run(capsys, "attach-eval", "x@1", str(tmp_path / "bad.json"), "--registry", reg)
    assert code == 1 and "must be a mapping" in err


def test_gc_and_registry_from_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSMOS_ROS_REGISTRY", str(tmp_path / "env"))
    run(capsys, "register", str(make_adapter_folder(tmp_path / "adapter")), "x")
    orphan = tmp_path / "env" / "blobs" / "sha256" / ("0" * 64 + ".safetensors")
    orphan.write_bytes(b"junk")
    code, out, _ = run(capsys, "verify")
    assert code == 1 and "orphan_blob" in out
    code, out, _ = run(capsys, "gc", "--min-age", "0")
    assert code == 0 and "1 file(s) removed" in out and not orphan.exists()
    assert run(capsys, "verify")[0] == 0


def test_force_approve_deprecate_revoke_and_list_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = str(tmp_path / "r")
    run(capsys, "register", str(make_adapter_folder(tmp_path / "a", seed=1)), "ur5e.pick", "--registry", reg)
    run(capsys, "register", str(make_adapter_folder(tmp_path / "b", seed=2)), "go2.walk", "--registry", reg)
    assert run(capsys, "promote", "ur5e.pick@1", "--registry", reg, "--note", "ready")[0] == 0
    code, out, _ = run(
        capsys, "approve", "ur5e.pick@1", "--registry", reg, "--note", "demo", "--by", "bob",
        "--force-reason", "customer demo",
    )  # fmt: skip
    assert code == 0 and "approved" in out and "forced" in out
    code, out, _ = run(capsys, "show", "ur5e.pick@1", "--registry", reg, "--json")
    last = json.loads(out)["history"][-1]
    assert (last["to_status"], last["by"], last["force_reason"]) == ("approved", "bob", "customer demo")

    code, out, _ = run(capsys, "deprecate", "ur5e.pick@1", "--registry", reg, "--note", "superseded")
    assert code == 0 and "deprecated" in out

    with pytest.raises(SystemExit) as refused:  # argparse: --note is required
        main(["adapters", "revoke", "ur5e.pick@1", "--registry", reg])
    assert refused.value.code == 2 and "--note" in capsys.readouterr().err
    code, _, err = run(capsys, "revoke", "ur5e.pick@1", "--registry", reg, "--note", " ")
    assert code == 1 and "note is required" in err and "Traceback" not in err
    code, out, _ = run(capsys, "revoke", "ur5e.pick@1", "--registry", reg, "--note", "recall")
    assert code == 0 and "revoked" in out
    code, out, _ = run(capsys, "log", "ur5e.pick@1", "--registry", reg, "--json")
    actions = [entry["action"] for entry in json.loads(out)]
    steps = ("candidate", "approved", "deprecated", "revoked")
    assert actions == ["register"] + [f"status:{step}" for step in steps]

    code, out, _ = run(capsys, "list", "--registry", reg, "--name", "ur5e.pick", "--json")
    listed = [(r["adapter_id"], r["status"]) for r in json.loads(out)]
    assert code == 0 and listed == [("ur5e.pick@1", "revoked")]
    code, out, _ = run(capsys, "list", "--registry", reg, "--name", "go2.walk")
    assert code == 0 and "go2.walk@1" in out and "ur5e.pick" not in out


# ---- log and show at 80 columns -------------------------------------------------------------------
@pytest.fixture()
def governed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, dict[str, Any]]:
    """A registry whose log and records carry long values: digests, paths, notes, a forced approval."""
    reg = str(tmp_path / "r")
    code, out, _ = run(
        capsys, "register", str(make_adapter_folder(tmp_path / "a", seed=1)), "ur5e.pick-place",
        "--registry", reg, "--by", "alice.robotics", "--tag", "site=lab2",
        "--note", "first attempt on the wrist camera after recalibration; poor light in the afternoon",
    )  # fmt: skip
    assert code == 0
    run(capsys, "promote", "ur5e.pick-place@1", "--registry", reg, "--note", "ready for the held-out split")
    results = tmp_path / "metrics.json"
    results.write_text(json.dumps(eval_results(psnr=99.5)))
    run(capsys, "attach-eval", "ur5e.pick-place@1", str(results), "--registry", reg, "--by", "eval-bot")
    run(capsys, "approve", "ur5e.pick-place@1", "--registry", reg, "--note", "meets the gate", "--by", "bob",
        "--force-reason", "customer demo next week, the gate is being recalibrated")  # fmt: skip
    run(capsys, "register", str(make_adapter_folder(tmp_path / "b", seed=2)), "ur5e.pick-place",
        "--registry", reg, "--parent", "ur5e.pick-place@1", "--by", "someone.with.a.long.name")  # fmt: skip
    out = run(capsys, "show", "ur5e.pick-place@1", "--registry", reg, "--json")[1]
    return reg, json.loads(out)


def _below(lines: list[str]) -> str:
    """The text of the indented lines (long values, moved below their row), as one string."""
    return " ".join(line.strip() for line in lines if line.startswith("    "))


def test_log_at_80_columns_keeps_one_line_per_entry_and_its_details_below(
    governed: tuple[str, dict[str, Any]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reg, record = governed
    sha = record["artifact_sha256"]
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "log", "ur5e.pick-place", "--registry", reg)
    lines = out.splitlines()
    assert code == 0 and max(len(line) for line in lines) <= 80, out
    assert next(line for line in lines if line.startswith("#")).split() == [
        "#", "at", "actor", "action", "adapter",
    ], out  # fmt: skip
    rows = {line.split()[0]: line for line in lines if re.match(r"\d+  ", line)}
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    assert re.fullmatch(rf"1  {when}  alice\.robotics +register +ur5e\.pick-place@1", rows["1"]), out
    assert re.fullmatch(rf"2  {when}  \S+ +status:candidate +ur5e\.pick-place@1", rows["2"]), out
    assert re.fullmatch(rf"4  {when}  bob +status:approved +ur5e\.pick-place@1", rows["4"]), out
    assert re.fullmatch(rf"5  {when}  someone\.with\S*… +register +ur5e\.pick-place@2", rows["5"]), out
    assert f"artifact_sha256={sha[:12]}…" in out
    assert "force_reason=customer demo next week, the gate is being recalibrated" in _below(lines), out

    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = run(capsys, "log", "--registry", reg)
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 60, out

    monkeypatch.delenv("COLUMNS")  # piped: the full table, each entry and its details on one line
    code, out, _ = run(capsys, "log", "--registry", reg)
    row = next(line for line in out.splitlines() if "ur5e.pick-place@2" in line)
    assert "someone.with.a.long.name" in row and "parent=ur5e.pick-place@1" in row, out
    code, out, _ = run(capsys, "log", "--registry", reg, "--json")
    assert json.loads(out)[0]["details"]["artifact_sha256"] == sha  # whole in --json


def test_show_at_80_columns_moves_long_values_whole_to_their_own_line(
    governed: tuple[str, dict[str, Any]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reg, record = governed
    sha = record["artifact_sha256"]
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "show", "ur5e.pick-place@1", "--registry", reg)
    lines = out.splitlines()
    assert code == 0 and max(len(line) for line in lines) <= 80, out
    assert "status                   approved" in lines and "rank                     4" in lines, out
    assert "created_by               alice.robotics" in lines, out
    assert f"created_at               {record['created_at']}" in lines, out
    for field, value in (("artifact_sha256", sha), ("base_fingerprint", BASE_FP)):
        assert lines[lines.index(field) + 1] == f"    {value}", out  # whole, under its field
    weights = lines[lines.index("weights") + 1 : lines.index("status history")]
    assert "".join(line.strip() for line in weights).endswith(f"/blobs/sha256/{sha}.safetensors"), out
    assert next(line for line in lines if line.startswith("at ")).split() == ["at", "from", "to", "by"]
    approval = record["history"][-1]
    row = next(line for line in lines if line.startswith(approval["at"]))
    assert re.fullmatch(rf"{re.escape(approval['at'])} +candidate +approved +bob", row), out
    below = _below(lines)
    assert "forced because: customer demo next week, the gate is being recalibrated" in below, out
    assert "note: first attempt on the wrist camera after recalibration; poor light" in below, out
    assert '"mean": 99.5' in below and record["evaluations"][0]["by"] in out

    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = run(capsys, "show", "ur5e.pick-place@2", "--registry", reg)
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 60, out
    code, out, _ = run(capsys, "show", "ur5e.pick-place@1", "--registry", reg, "--json")
    assert json.loads(out) == record  # --json does not depend on the width

    monkeypatch.delenv("COLUMNS")  # piped: the full table, every value on its row
    code, out, _ = run(capsys, "show", "ur5e.pick-place@1", "--registry", reg)
    assert any("artifact_sha256" in line and sha in line for line in out.splitlines()), out


# ---- register without a base fingerprint: the library warns, the CLI says it once --------------------
def test_register_without_base_fingerprint_is_said_once_by_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from cosmos_ros.registry import store

    bare = str(make_adapter_folder(tmp_path / "a", base_fingerprint=None))
    reg = str(tmp_path / "r")
    with caplog.at_level(logging.WARNING, logger="cosmos_ros.registry"):
        code, _, err = run(capsys, "register", bare, "nofp", "--registry", reg)
    assert code == 0 and err.count("records no base-model fingerprint") == 1, err
    assert "base-model fingerprint" not in caplog.text  # the library's own record was dropped...
    assert not store.LOG.filters  # ...only during that call

    # A real process, where cosmos-ros configures logging to stderr as a user sees it.
    proc = subprocess.run(
        [sys.executable, "-m", "cosmos_ros.cli", "adapters", "register", bare, "nofp", "--registry", reg],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "COLUMNS": "80"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("records no base-model fingerprint") == 1, proc.stderr
    assert "cosmos-ros: warning: nofp@2 records no base-model fingerprint" in proc.stderr
