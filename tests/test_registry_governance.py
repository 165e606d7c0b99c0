"""The registry's trust boundary (issue 18): imports, evidence, record validation, display, database file.

Bundles here are crafted by hand with tarfile, as an attacker or a careless exporter would write
them; every case goes through the real registry and the real CLI.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sqlite3
import tarfile
from pathlib import Path
from typing import Any

import pytest
from registry_helpers import (
    BASE_FP,
    OTHER_BASE_FP,
    assert_clean_error,
    eval_results,
    make_adapter_folder,
    run,
)

from cosmos_ros.model.adapter_folder import WEIGHTS_NAME
from cosmos_ros.registry import AdapterRefusedError, RegistryError, StatusTransitionError, open_registry

ATTACKER_HISTORY = [
    {"from_status": old, "to_status": new, "by": "mallory", "at": f"2026-01-01T00:00:0{i}.000000Z"}
    for i, (old, new) in enumerate([(None, "draft"), ("draft", "candidate"), ("candidate", "approved")])
]


def weights_bytes(tmp_path: Path, seed: int = 5) -> bytes:
    return (make_adapter_folder(tmp_path / f"w{seed}", seed=seed) / WEIGHTS_NAME).read_bytes()


def craft_bundle(path: Path, weights: bytes, record: Any = None, **fields: Any) -> Path:
    """A bundle written from scratch: an approved record (by default) and the given weights."""
    digest = hashlib.sha256(weights).hexdigest()
    if record is None:
        record = {
            "schema": "cosmos_ros.registry-record/1",
            "name": "arm.pick",
            "version": 1,
            "artifact_sha256": digest,
            "artifact_size": len(weights),
            "status": "approved",
            "adapter_type": "lora",
            "rank": 4,
            "base_fingerprint": BASE_FP,
            "created_by": "mallory",
            "created_at": "2026-01-01T00:00:00.000000Z",
            "tensor_count": 12,
            "history": ATTACKER_HISTORY,
            "evaluations": [],
        }
        record.update(fields)
    manifest = {
        "schema": "cosmos_ros.registry-bundle/1",
        "exported_at": "2026-01-01T00:00:03.000000Z",
        "artifact": f"artifact/{digest}.safetensors",
        "record": record,
    }
    payload = json.dumps(manifest).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in (("bundle.json", payload), (f"artifact/{digest}.safetensors", weights)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# ---- 1. an import never arrives approved ----------------------------------------------------------
@pytest.mark.parametrize(
    "case",
    [
        {},  # approved, no evaluation at all
        {"evaluations": [{"results": {"passed": False}, "by": "mallory", "at": "2026-01-01T00:00:02Z"}]},
        {"base_fingerprint": None},
    ],
    ids=["no evaluation", "failed evaluation", "no base fingerprint"],
)
def test_a_bundle_that_says_approved_lands_as_a_candidate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: dict[str, Any]
) -> None:
    bundle = craft_bundle(tmp_path / "b.tar", weights_bytes(tmp_path), **case)
    reg = str(tmp_path / "r")
    code, out, err = run(capsys, "import", str(bundle), "--registry", reg, "--by", "carol")
    assert code == 0, err
    assert "arm.pick@1 (candidate)" in out
    with open_registry(reg) as registry:
        record = registry.get("arm.pick@1")
        assert record.status == "candidate" and record.evaluations == [] and record.approvals == []
        assert record.provenance["exporter_status"] == "approved"
        with pytest.raises(AdapterRefusedError, match="candidate, not approved"):
            registry.resolve_for_loading("arm.pick@1", base_fingerprint=BASE_FP)
        with pytest.raises(RegistryError, match=re.escape("no adapter matches 'arm.pick@approved'")):
            registry.resolve_for_loading("arm.pick@approved", base_fingerprint=BASE_FP)
        with pytest.raises(StatusTransitionError):  # the exporter's word opens no gate here
            registry.approve("arm.pick@1", by="carol", note="they said so")
    code, out, _ = run(capsys, "show", "arm.pick@1", "--registry", reg)
    assert code == 0 and "exporter said (not trusted here): approved by mallory at 2026-01-01" in out, out


def test_imported_version_is_approved_only_by_this_sites_gate_or_a_recorded_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "r"
    run(
        capsys,
        "import",
        str(craft_bundle(tmp_path / "a.tar", weights_bytes(tmp_path, 1))),
        "--registry",
        str(reg),
    )
    bundle_b = craft_bundle(tmp_path / "b.tar", weights_bytes(tmp_path, 2), name="arm.place")
    run(capsys, "import", str(bundle_b), "--registry", str(reg))
    with open_registry(reg) as registry:
        registry.attach_evaluation("arm.pick@1", eval_results(passed=True), by="our-eval")
        assert registry.approve("arm.pick@1", by="dave", note="our gate").status == "approved"
        forced = registry.approve("arm.place@1", by="dave", note="trusted partner", force_reason="audit 7")
        assert forced.approvals[-1].force_reason == "audit 7"
        assert registry.audit_log("arm.place@1")[-1].details["forced"] is True
        loaded = registry.resolve_for_loading("arm.pick@approved", base_fingerprint=BASE_FP)
        assert loaded.adapter_id == "arm.pick@1"


def test_weights_of_a_revoked_version_are_refused_under_a_new_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = weights_bytes(tmp_path)
    reg = str(tmp_path / "r")
    assert run(capsys, "import", str(craft_bundle(tmp_path / "a.tar", weights)), "--registry", reg)[0] == 0
    assert run(capsys, "revoke", "arm.pick@1", "--registry", reg, "--note", "recall")[0] == 0
    again = craft_bundle(tmp_path / "b.tar", weights, name="arm.pick2", version=7)
    code, _, err = run(capsys, "import", str(again), "--registry", reg)
    assert_clean_error(code, err, "are those of arm.pick@1, revoked here")
    with open_registry(reg) as registry:
        assert [r.adapter_id for r in registry.list()] == ["arm.pick@1"]


# ---- 2. evidence with a schema ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("results", "fragment"),
    [
        ({"passed": "false"}, "'passed'"),
        ({"hello": "world"}, "'hello'"),
        ({**eval_results(), "passed": "false"}, "'passed' = 'false'"),
        ({**eval_results(), "metrics": [1]}, "'metrics'"),
        ({**eval_results(), "base_fingerprint": "nope"}, "'base_fingerprint' = 'nope'"),
        ({**eval_results(), "passed": True, "gate": {"rules": []}}, "'gate'"),
    ],
    ids=["passed as text", "unknown field", "passed text in schema", "metrics list", "bad base", "no rules"],
)
def test_attach_eval_takes_only_the_schema_eval_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], results: dict[str, Any], fragment: str
) -> None:
    reg = str(tmp_path / "r")
    run(capsys, "register", str(make_adapter_folder(tmp_path / "a")), "arm.pick", "--registry", reg)
    run(capsys, "promote", "arm.pick@1", "--registry", reg, "--note", "ready")
    evidence = tmp_path / "results.json"
    evidence.write_text(json.dumps(results))
    code, _, err = run(capsys, "attach-eval", "arm.pick@1", str(evidence), "--registry", reg)
    assert_clean_error(code, err, fragment)
    code, _, err = run(capsys, "approve", "arm.pick@1", "--registry", reg, "--note", "n")
    assert_clean_error(code, err, "no evaluation results")


def test_only_a_gated_passing_evaluation_for_this_base_opens_the_gate(tmp_path: Path) -> None:
    with open_registry(tmp_path / "r") as registry:
        record = registry.register(make_adapter_folder(tmp_path / "a"), "arm.pick", status="candidate")
        with pytest.raises(RegistryError, match=re.escape("not the base model arm.pick@1 was trained on")):
            registry.attach_evaluation(record.adapter_id, eval_results(base=OTHER_BASE_FP))
        registry.attach_evaluation(record.adapter_id, eval_results(passed=None))  # ungated: context only
        with pytest.raises(StatusTransitionError, match="no gate verdict"):
            registry.approve(record.adapter_id, note="n")
        registry.attach_evaluation(record.adapter_id, eval_results(passed=True))
        assert registry.approve(record.adapter_id, note="n").status == "approved"


# ---- 3. one validation path -------------------------------------------------------------------------
IMPORT_CASES = {
    "training_config not a dict": ({"training_config": "notadict"}, "training_config 'notadict'"),
    "metrics a list": ({"metrics": [1]}, "metrics [1]"),
    "metrics not numbers": ({"metrics": {"loss": "low"}}, "metrics.loss 'low'"),
    "unknown parent": ({"parent": "nope@99"}, "parent 'nope@99' is not registered here"),
    "parent not an id": ({"parent": "nope"}, "parent 'nope'"),
    "rank negative": ({"rank": -5}, "rank -5"),
    "rank text": ({"rank": "eight"}, "rank 'eight'"),
    "bad base": ({"base_fingerprint": "not-a-fp"}, "base_fingerprint 'not-a-fp'"),
    "huge version": ({"version": 2**70}, "version 1180591620717411303424"),
    "evaluation missing fields": ({"evaluations": [{"results": {}}]}, "missing"),
    "evaluation results a list": (
        {"evaluations": [{"results": [1], "by": "m", "at": "t"}]},
        "evaluations[0].results [1]",
    ),
    "history not a list": ({"history": "approved"}, "'history' must be a list"),
}


@pytest.mark.parametrize("case", sorted(IMPORT_CASES))
def test_imports_refuse_what_register_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    fields, fragment = IMPORT_CASES[case]
    bundle = craft_bundle(tmp_path / "b.tar", weights_bytes(tmp_path), **fields)
    reg = tmp_path / "r"
    code, _, err = run(capsys, "import", str(bundle), "--registry", str(reg))
    assert_clean_error(code, err, fragment)
    if case != "unknown parent":  # refused while reading the bundle: no empty registry left behind
        assert not reg.exists()


def test_a_record_that_is_a_list_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = craft_bundle(tmp_path / "b.tar", weights_bytes(tmp_path), record=[1, 2])
    code, _, err = run(capsys, "import", str(bundle), "--registry", str(tmp_path / "r"))
    assert_clean_error(code, err, "a record is a JSON object, got list")


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--rank", "-5"], "rank -5"),
        (["--base-fingerprint", "not-a-fp"], "base_fingerprint 'not-a-fp'"),
        (["--parent", "nope@99"], "no adapter named 'nope'"),
    ],
)
def test_register_refuses_bad_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], fragment: str
) -> None:
    reg = str(tmp_path / "r")
    code, _, err = run(
        capsys, "register", str(make_adapter_folder(tmp_path / "a")), "arm.pick", "--registry", reg, *flags
    )
    assert_clean_error(code, err, fragment)
    with open_registry(reg) as registry:
        assert registry.list() == []


def test_library_registration_refuses_bad_overrides(tmp_path: Path) -> None:
    with open_registry(tmp_path / "r") as registry:
        for overrides, fragment in (
            ({"rank": "eight"}, "rank 'eight'"),
            ({"training_config": [1, 2]}, "training_config [1, 2]"),
            ({"metrics": {"loss": [1]}}, "metrics.loss [1]"),
        ):
            with pytest.raises(RegistryError, match=re.escape(fragment)):
                registry.register(make_adapter_folder(tmp_path / "a"), "arm.pick", overrides=overrides)
        assert registry.list() == []


def test_a_huge_version_in_a_reference_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = str(tmp_path / "r")
    run(capsys, "register", str(make_adapter_folder(tmp_path / "a")), "m", "--registry", reg)
    code, _, err = run(capsys, "show", "m@99999999999999999999999", "--registry", reg)
    assert_clean_error(code, err, "versions run from 1 to")


# ---- 4. control characters are escaped on display -----------------------------------------------------
def test_control_characters_never_reach_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = str(tmp_path / "r")
    evil = "ok\x1b]0;pwned\x07\x1b[2J\u202e [/oops] [red]x"
    run(
        capsys,
        "register",
        str(make_adapter_folder(tmp_path / "a")),
        "arm.pick",
        "--registry",
        reg,
        "--note",
        evil,
    )
    run(capsys, "promote", "arm.pick@1", "--registry", reg, "--note", evil)
    for command in (["show", "arm.pick@1"], ["log"], ["list"]):
        code, out, err = run(capsys, *command, "--registry", reg)
        assert code == 0, err
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, (command, out)
    code, out, _ = run(capsys, "show", "arm.pick@1", "--registry", reg)
    assert "ok\\x1b]0;pwned\\x07\\x1b[2J\\u202e [/oops] [red]x" in out  # shown, escaped and literal


# ---- 5. a damaged database is an error, never recreated ------------------------------------------------
@pytest.mark.parametrize("damage", ["empty", "not sqlite", "truncated", "missing"])
def test_a_damaged_database_is_an_error_and_gc_never_runs_on_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    reg = tmp_path / "r"
    for seed in range(3):
        run(
            capsys,
            "register",
            str(make_adapter_folder(tmp_path / f"a{seed}", seed=seed)),
            f"n{seed}",
            "--registry",
            str(reg),
        )
    db = reg / "registry.sqlite3"
    with sqlite3.connect(db) as conn:  # fold the WAL in, so the main file holds everything
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = db.read_bytes()
    if damage == "empty":
        db.write_bytes(b"")
    elif damage == "not sqlite":
        db.write_bytes(b"hello, I am not a database" * 100)
    elif damage == "truncated":
        db.write_bytes(data[: len(data) // 2])
    else:
        db.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    blobs = sorted((reg / "blobs").rglob("*.safetensors"))
    assert len(blobs) == 3
    for command in (["gc", "--min-age", "0"], ["list"], ["verify"]):
        code, _, err = run(capsys, *command, "--registry", str(reg))
        assert_clean_error(code, err, str(db))
    assert sorted((reg / "blobs").rglob("*.safetensors")) == blobs  # nothing deleted
    assert db.exists() == (damage != "missing") and (damage != "empty" or db.stat().st_size == 0)


def test_a_new_registry_still_opens_and_reopens(tmp_path: Path) -> None:
    for _ in range(2):
        with open_registry(tmp_path / "fresh") as registry:
            assert registry.list() == []
    assert (tmp_path / "fresh" / "registry.sqlite3").stat().st_size > 0


# ---- 6. tamper-evidence: rows edited outside the registry -------------------------------------------------
def _edit_database(registry_dir: Path, *statements: str) -> None:
    """What someone with write access to the file does: drop the guards, change rows, leave."""
    with sqlite3.connect(registry_dir / "registry.sqlite3") as conn:
        for statement in statements:
            conn.execute(statement)


TAMPERING = {
    "revoked set back to approved": (
        "UPDATE adapters SET status = 'approved' WHERE version = 1",
        "has status 'approved', but its last recorded status change says 'revoked'",
    ),
    "bytes flipped in a row's JSON": (
        "DROP TRIGGER adapters_immutable;"
        " UPDATE adapters SET training_config = '{\"lr\": 1' WHERE version = 1",
        "differs from what was written",
    ),
    "approval inserted by hand": (
        "UPDATE adapters SET status = 'approved' WHERE version = 1;"
        " INSERT INTO status_changes (name, version, from_status, to_status, by, at)"
        " VALUES ('arm.pick', 1, 'revoked', 'approved', 'mallory', '2026-12-31T00:00:00Z')",
        "has no chain entry",
    ),
    "status change deleted": (
        "DROP TRIGGER status_changes_no_delete;"
        " DELETE FROM status_changes WHERE to_status = 'revoked';"
        " UPDATE adapters SET status = 'approved' WHERE version = 1",
        "has 2 status changes, 3 were written",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_rows_edited_outside_the_registry_fail_verify_and_never_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    statements, fragment = TAMPERING[case]
    reg = tmp_path / "r"
    with open_registry(reg) as registry:
        registry.register(make_adapter_folder(tmp_path / "a"), "arm.pick", status="candidate")
        registry.attach_evaluation("arm.pick@1", eval_results(), by="eval")
        registry.approve("arm.pick@1", note="ok")
        registry.revoke("arm.pick@1", note="recall")
        assert registry.verify() == []
    _edit_database(reg, *statements.split(";"))
    with open_registry(reg) as registry:
        problems = registry.verify()
        assert any(p.kind == "database_row" and "arm.pick@1" in p.subject for p in problems), problems
        with pytest.raises(RegistryError, match=re.escape(fragment)):
            registry.resolve_for_loading("arm.pick@1", base_fingerprint=BASE_FP)
    code, out, _ = run(capsys, "verify", "--registry", str(reg), "--json")
    assert code == 1 and "database_row" in out
    code, _, err = run(capsys, "show", "arm.pick@1", "--registry", str(reg))
    assert_clean_error(code, err, fragment)
    code, _, err = run(capsys, "list", "--registry", str(reg))
    assert code == 0 or "Traceback" not in err


def test_a_registry_from_before_the_chain_is_chained_once_on_open(tmp_path: Path) -> None:
    reg = tmp_path / "r"
    with open_registry(reg) as registry:
        registry.register(make_adapter_folder(tmp_path / "a"), "arm.pick")
    _edit_database(
        reg, "DROP TRIGGER chain_no_delete", "DELETE FROM chain", "DELETE FROM meta WHERE key = 'chain'"
    )
    with open_registry(reg) as registry:  # as an older registry looks: rows, no chain
        assert registry.verify() == [] and registry.get("arm.pick@1").status == "draft"
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        _edit_database(reg, "DELETE FROM chain")  # the guard is back
    _edit_database(reg, "DROP TRIGGER chain_no_delete", "DELETE FROM chain")
    with open_registry(reg) as registry:  # once chained, a wiped chain is damage, not an old registry
        with pytest.raises(RegistryError, match="has no chain entry"):
            registry.get("arm.pick@1")
        assert {p.kind for p in registry.verify()} == {"database_row"}


# ---- 6b. bounded imports -----------------------------------------------------------------------------------
def test_an_artifact_over_the_size_cap_is_refused_before_extraction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = weights_bytes(tmp_path)
    bundle = craft_bundle(tmp_path / "b.tar", weights)
    monkeypatch.setenv("COSMOS_ROS_MAX_ADAPTER_BYTES", str(len(weights) - 1))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    code, _, err = run(capsys, "import", str(bundle), "--registry", str(tmp_path / "r"))
    assert_clean_error(code, err, f"artifact is {len(weights)} bytes, more than the {len(weights) - 1}")
    assert not (tmp_path / "r").exists() and list((tmp_path / "tmp").iterdir()) == []
    monkeypatch.setenv("COSMOS_ROS_MAX_ADAPTER_BYTES", "lots")
    code, _, err = run(capsys, "import", str(bundle), "--registry", str(tmp_path / "r"))
    assert_clean_error(code, err, "COSMOS_ROS_MAX_ADAPTER_BYTES='lots' is not accepted")
    monkeypatch.setenv("COSMOS_ROS_MAX_ADAPTER_BYTES", str(len(weights)))
    assert run(capsys, "import", str(bundle), "--registry", str(tmp_path / "r"))[0] == 0


def test_a_killed_import_leaves_its_copy_in_the_registry_where_gc_removes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import subprocess
    import sys

    reg = tmp_path / "r"
    open_registry(reg).close()
    bundle = craft_bundle(tmp_path / "b.tar", weights_bytes(tmp_path))
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "COSMOS_ROS_REGISTRY_FAULT": "import_check_copy", "TMPDIR": str(tmp_path / "tmp")}
    command = [
        sys.executable,
        "-m",
        "cosmos_ros.cli",
        "adapters",
        "import",
        str(bundle),
        "--registry",
        str(reg),
    ]
    killed = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    leftovers = sorted(reg.glob(".import-*.part"))
    assert len(leftovers) == 1 and list((tmp_path / "tmp").iterdir()) == []
    code, out, _ = run(capsys, "gc", "--min-age", "0", "--registry", str(reg))
    assert code == 0 and leftovers[0].name in out and not leftovers[0].exists()


def test_metadata_that_is_not_a_mapping_is_refused_before_a_registry_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_adapter_folder(tmp_path / "a")
    (folder / "adapter_metadata.json").write_text("[1, 2]")
    code, _, err = run(capsys, "register", str(folder), "arm.pick", "--registry", str(tmp_path / "r"))
    assert_clean_error(code, err, "metadata [1, 2] is not accepted", "adapter_metadata.json")
    assert not (tmp_path / "r").exists()
    with open_registry(tmp_path / "lib") as registry, pytest.raises(RegistryError, match="must be a mapping"):
        registry.register(folder, "arm.pick")


def test_export_onto_a_folder_is_a_clean_error_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = str(tmp_path / "r")
    run(capsys, "register", str(make_adapter_folder(tmp_path / "a")), "arm.pick", "--registry", reg)
    (tmp_path / "out").mkdir()
    code, _, err = run(capsys, "export", "arm.pick@1", "-o", str(tmp_path / "out"), "--registry", reg)
    assert_clean_error(code, err, "is a folder; give a file name")
    assert list((tmp_path / "out").iterdir()) == []
    with open_registry(reg) as registry:
        assert [e.action for e in registry.audit_log()] == ["register"]


def test_stale_import_copies_are_removed_at_the_next_start(tmp_path: Path) -> None:
    import os
    import time

    reg = tmp_path / "r"
    open_registry(reg).close()
    stale, fresh = reg / ".import-old.part", reg / ".import-new.part"
    for path in (stale, fresh):
        path.write_bytes(b"x" * 1024)
    old = time.time() - 7200
    os.utime(stale, (old, old))
    open_registry(reg).close()
    assert not stale.exists() and fresh.exists()  # a fresh one may belong to an import in progress


def test_a_metadata_parent_that_is_not_registered_is_refused_not_dropped(tmp_path: Path) -> None:
    folder = make_adapter_folder(tmp_path / "a")
    metadata = json.loads((folder / "adapter_metadata.json").read_text())
    (folder / "adapter_metadata.json").write_text(json.dumps({**metadata, "parent": "nope@99"}))
    with open_registry(tmp_path / "r") as registry:
        with pytest.raises(RegistryError, match=r"adapter_metadata.json: parent 'nope@99' is not accepted"):
            registry.register(folder, "arm.pick")
        assert registry.list() == []
        first = registry.register(make_adapter_folder(tmp_path / "b", seed=2), "nope")
        (folder / "adapter_metadata.json").write_text(json.dumps({**metadata, "parent": first.adapter_id}))
        assert registry.register(folder, "arm.pick").parent == "nope@1"


def test_a_full_disk_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import shutil
    from collections import namedtuple

    from cosmos_ros.registry import artifacts, bundle

    reg = str(tmp_path / "r")
    open_registry(reg).close()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(bundle.shutil, "disk_usage", lambda _path: usage(100, 90, 10))
    weights = weights_bytes(tmp_path)
    code, _, err = run(capsys, "import", str(craft_bundle(tmp_path / "b.tar", weights)), "--registry", reg)
    assert_clean_error(code, err, f"artifact is {len(weights)} bytes, only 10 free in {reg}")
    monkeypatch.setattr(bundle.shutil, "disk_usage", shutil.disk_usage)

    def full(*_args: Any, **_kw: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / "blobs"))

    monkeypatch.setattr(artifacts.ArtifactStore, "put", full)
    code, _, err = run(
        capsys, "register", str(make_adapter_folder(tmp_path / "a")), "arm.pick", "--registry", reg
    )
    assert_clean_error(code, err, "No space left on device", str(tmp_path / "r" / "blobs"))
