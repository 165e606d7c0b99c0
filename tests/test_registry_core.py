"""Registry core: registration, lookup, governance, loading policy, integrity; all on real SQLite files."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest
from registry_helpers import BASE_FP, OTHER_BASE_FP, eval_results, flip_one_byte, make_adapter_folder

from cosmos_ros.model.adapter_folder import WEIGHTS_NAME
from cosmos_ros.registry import (
    AdapterNotFoundError,
    AdapterRefusedError,
    ArtifactError,
    InvalidNameError,
    LoadingPolicy,
    Registry,
    StatusTransitionError,
    open_registry,
)
from cosmos_ros.registry.artifacts import sha256_file
from cosmos_ros.registry.records import AdapterRecord

GOOD_EVAL = eval_results(passed=True)


@pytest.fixture()
def registry(tmp_path: Path) -> Registry:
    reg = open_registry(tmp_path / "registry")
    yield reg
    reg.close()


def approved(registry: Registry, folder: Path, name: str = "ur5e.pick") -> AdapterRecord:
    record = registry.register(folder, name, created_by="alice")
    registry.promote(record.adapter_id, by="alice", note="ready for eval")
    registry.attach_evaluation(record.adapter_id, GOOD_EVAL, by="eval-bot")
    return registry.approve(record.adapter_id, by="bob", note="meets the gate")


def test_register_copies_weights_and_reads_metadata(registry: Registry, tmp_path: Path) -> None:
    folder = make_adapter_folder(tmp_path / "a", seed=1)
    record = registry.register(folder, "ur5e.pick", created_by="alice", tags=["site=lab2"], note="first")
    digest, size = sha256_file(folder / WEIGHTS_NAME)
    assert record.adapter_id == "ur5e.pick@1"
    assert (record.artifact_sha256, record.artifact_size) == (digest, size)
    assert record.status == "draft"
    assert record.adapter_type == "lora" and record.rank == 4 and record.alpha == 4.0
    assert record.base_fingerprint == BASE_FP
    assert record.training_config["optimizer"] == {"name": "adamw"}
    assert record.metrics == {"final_loss": pytest.approx(0.2)}
    assert record.dataset_manifest_sha256 == "f0" * 32
    assert record.code_version == "0.1.0+g1234567"
    assert record.tags == ["site=lab2"] and record.created_by == "alice"
    assert record.tensor_count == 12
    blob = registry.artifact_path(record)
    assert blob == Path(registry.location) / "blobs" / "sha256" / f"{digest}.safetensors"
    assert blob.read_bytes() == (folder / WEIGHTS_NAME).read_bytes()
    # the source can change or vanish afterwards: the registry holds its own copy
    (folder / WEIGHTS_NAME).unlink()
    assert registry.get("ur5e.pick@1") == record


def test_versions_increase_and_refs_resolve(registry: Registry, tmp_path: Path) -> None:
    first = approved(registry, make_adapter_folder(tmp_path / "a", seed=1))
    second_folder = make_adapter_folder(tmp_path / "b", seed=2)
    second = registry.register(second_folder, "ur5e.pick", parent=first.adapter_id)
    assert second.version == 2 and second.parent == "ur5e.pick@1"
    assert registry.get("ur5e.pick@latest").version == 2
    assert registry.get("ur5e.pick@approved").version == 1
    assert registry.get("ur5e.pick").version == 1  # plain name follows approvals
    assert registry.get("ur5e.pick@draft").version == 2
    registry.revoke("ur5e.pick@1", by="bob", note="recall")
    assert registry.get("ur5e.pick").version == 2  # no approved left: newest not revoked
    with pytest.raises(AdapterNotFoundError, match=r"ur5e.pick@1 \(revoked\), ur5e.pick@2 \(draft\)"):
        registry.get("ur5e.pick@7")
    with pytest.raises(AdapterNotFoundError, match=r"registered names: ur5e\.pick"):
        registry.get("go2.walk")


def test_register_infers_from_weights_and_flags_override(registry: Registry, tmp_path: Path) -> None:
    folder = make_adapter_folder(tmp_path / "stock", seed=3, rank=8, with_metadata=False)
    record = registry.register(
        folder / WEIGHTS_NAME, "stock", overrides={"base_fingerprint": OTHER_BASE_FP, "alpha": 16}
    )
    assert record.rank == 8 and record.adapter_type == "lora"
    assert record.target_modules == ["attn1.to_q", "attn1.to_v", "ff.net.0.proj"]
    assert record.base_fingerprint == OTHER_BASE_FP and record.alpha == 16.0
    overridden = registry.register(make_adapter_folder(tmp_path / "m", seed=4), "m", overrides={"rank": 2})
    assert overridden.rank == 2
    with pytest.raises(Exception, match="unknown registration field"):
        registry.register(folder, "stock", overrides={"colour": "red"})


def test_only_safetensors_are_accepted(registry: Registry, tmp_path: Path) -> None:
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_lora_weights.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(FileNotFoundError, match="never loaded"):
        registry.register(pickled, "evil")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / WEIGHTS_NAME).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      " + b"\0" * 64)
    with pytest.raises(ArtifactError, match="not a valid safetensors file"):
        registry.register(fake, "evil")
    with pytest.raises(InvalidNameError, match="path separator"):
        registry.register(make_adapter_folder(tmp_path / "ok"), "../escape")
    assert registry.list() == []
    assert list((Path(registry.location) / "blobs" / "sha256").iterdir()) == []


def test_records_are_immutable_and_audit_log_is_append_only(registry: Registry, tmp_path: Path) -> None:
    registered = registry.register(make_adapter_folder(tmp_path / "a"), "ur5e.pick")
    # Row triggers only fire on existing rows: give every append-only table at least one.
    record = registry.attach_evaluation(registered.adapter_id, GOOD_EVAL, by="eval-bot")
    db = sqlite3.connect(Path(registry.location) / "registry.sqlite3")
    for statement, message in (
        ("UPDATE adapters SET artifact_sha256 = '" + "0" * 64 + "'", "immutable"),
        ("UPDATE adapters SET base_fingerprint = 'x'", "immutable"),
        ("DELETE FROM adapters", "never deleted"),
        ("UPDATE audit_log SET actor = 'mallory'", "audit_log is append-only"),
        ("DELETE FROM audit_log", "audit_log is append-only"),
        ("UPDATE status_changes SET note = 'rewritten'", "status_changes is append-only"),
        ("DELETE FROM status_changes", "status_changes is append-only"),
        ("UPDATE evaluations SET results = '{\"passed\": true}'", "evaluations is append-only"),
        ("DELETE FROM evaluations", "evaluations is append-only"),
    ):
        with pytest.raises(sqlite3.IntegrityError, match=message):
            db.execute(statement)
    db.close()
    assert registry.get(record.adapter_id) == record
    assert [entry.action for entry in registry.audit_log()] == ["register", "evaluation"]


def test_registry_database_uses_wal(registry: Registry) -> None:
    db = sqlite3.connect(Path(registry.location) / "registry.sqlite3")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_registry_refuses_a_database_without_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where SQLite keeps another journal mode (e.g. no shared memory on NFS), opening fails loudly."""
    from cosmos_ros.registry import RegistryError, sqlite_store

    class NoWal(sqlite3.Connection):
        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
            if sql.replace(" ", "").upper() == "PRAGMAJOURNAL_MODE=WAL":
                sql = "PRAGMA journal_mode = DELETE"  # what SQLite answers when it cannot do WAL
            return super().execute(sql, *args)

    real_connect = sqlite3.connect

    def connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        return real_connect(*args, factory=NoWal, **kwargs)

    monkeypatch.setattr(sqlite_store.sqlite3, "connect", connect)
    with pytest.raises(RegistryError, match=r"registry .*registry\.sqlite3: SQLite refused write-ahead"):
        open_registry(tmp_path / "nowal")


def test_status_machine_and_notes(registry: Registry, tmp_path: Path) -> None:
    record = registry.register(make_adapter_folder(tmp_path / "a"), "ur5e.pick")
    with pytest.raises(StatusTransitionError, match="note is required"):
        registry.promote(record.adapter_id, by="alice", note=" ")
    with pytest.raises(StatusTransitionError, match="cannot go from draft to approved"):
        registry.approve(record.adapter_id, by="alice", note="skip ahead", force_reason="hurry")
    with pytest.raises(StatusTransitionError, match="cannot go from draft to deprecated"):
        registry.deprecate(record.adapter_id, by="alice", note="x")
    registry.revoke(record.adapter_id, by="alice", note="bad data")
    with pytest.raises(StatusTransitionError, match="revoked is final"):
        registry.promote(record.adapter_id, by="alice", note="undo")
    with pytest.raises(StatusTransitionError, match="starts as draft or candidate"):
        registry.register(make_adapter_folder(tmp_path / "b", seed=2), "ur5e.pick", status="approved")


def test_approve_needs_evaluation_unless_forced_and_audited(registry: Registry, tmp_path: Path) -> None:
    record = registry.register(make_adapter_folder(tmp_path / "a"), "ur5e.pick")
    registry.promote(record.adapter_id, by="alice", note="try")
    with pytest.raises(StatusTransitionError, match="no evaluation results"):
        registry.approve(record.adapter_id, by="bob", note="looks fine")
    registry.attach_evaluation(record.adapter_id, eval_results(passed=False), by="eval-bot")
    with pytest.raises(StatusTransitionError, match="did not pass"):
        registry.approve(record.adapter_id, by="bob", note="looks fine")
    assert registry.get(record.adapter_id).status == "candidate"
    done = registry.approve(record.adapter_id, by="bob", note="demo tomorrow", force_reason="customer demo")
    assert done.status == "approved"
    assert done.approvals[-1].by == "bob" and done.approvals[-1].force_reason == "customer demo"
    last = registry.audit_log(record.adapter_id)[-1]
    assert last.action == "status:approved" and last.actor == "bob"
    assert last.details["forced"] is True and last.details["force_reason"] == "customer demo"
    assert [e.action for e in registry.audit_log("ur5e.pick")] == [
        "register",
        "status:candidate",
        "evaluation",
        "status:approved",
    ]


def test_approve_with_evaluation(registry: Registry, tmp_path: Path) -> None:
    record = approved(registry, make_adapter_folder(tmp_path / "a"))
    assert record.status == "approved"
    assert record.latest_evaluation is not None and record.latest_evaluation.results == GOOD_EVAL
    assert registry.audit_log(record.adapter_id)[-1].details["forced"] is False
    assert [c.to_status for c in record.history] == ["draft", "candidate", "approved"]


def test_approve_needs_a_base_fingerprint(registry: Registry, tmp_path: Path) -> None:
    record = registry.register(make_adapter_folder(tmp_path / "a", base_fingerprint=None), "nofp")
    registry.promote(record.adapter_id, by="a", note="n")
    registry.attach_evaluation(record.adapter_id, GOOD_EVAL, by="e")
    with pytest.raises(StatusTransitionError, match="no base-model fingerprint"):
        registry.approve(record.adapter_id, by="b", note="n", force_reason="r")


def test_register_without_base_fingerprint_logs_why_it_matters(
    registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Library callers (training, scripts) hear about it too, not only users of the CLI."""
    with caplog.at_level(logging.WARNING, logger="cosmos_ros.registry"):
        registry.register(make_adapter_folder(tmp_path / "a", base_fingerprint=None), "nofp")
    notices = [r for r in caplog.records if "base-model fingerprint" in r.getMessage()]
    assert len(notices) == 1 and notices[0].levelno == logging.WARNING, caplog.text
    message = notices[0].getMessage()
    assert message.startswith("nofp@1 records no base-model fingerprint"), message
    assert "cannot be matched to the base model it was trained on" in message and "approved" in message

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cosmos_ros.registry"):
        registry.register(make_adapter_folder(tmp_path / "b", seed=1), "withfp")
    assert "base-model fingerprint" not in caplog.text


def test_loading_policy(registry: Registry, tmp_path: Path) -> None:
    good = approved(registry, make_adapter_folder(tmp_path / "a", seed=1))
    draft = registry.register(make_adapter_folder(tmp_path / "b", seed=2), "ur5e.pick")
    loadable = registry.resolve_for_loading("ur5e.pick@approved", base_fingerprint=BASE_FP)
    assert loadable.record == good and loadable.weights_path.is_file()
    state = loadable.state_dict()
    assert state["transformer.transformer_blocks.0.attn1.to_q.lora_A.weight"].shape == (4, 32)
    assert LoadingPolicy("ur5e.pick").resolve(registry, BASE_FP).adapter_id == "ur5e.pick@1"
    with pytest.raises(AdapterRefusedError, match="draft, not approved"):
        registry.resolve_for_loading("ur5e.pick@2", base_fingerprint=BASE_FP)
    assert (
        registry.resolve_for_loading(draft.adapter_id, base_fingerprint=BASE_FP, allow_unapproved=True).record
        == draft
    )
    with pytest.raises(AdapterRefusedError, match="trained on base model"):
        registry.resolve_for_loading("ur5e.pick@1", base_fingerprint=OTHER_BASE_FP)
    registry.deprecate("ur5e.pick@1", by="bob", note="superseded")
    assert registry.resolve_for_loading("ur5e.pick@1", base_fingerprint=BASE_FP).record.status == "deprecated"
    registry.revoke("ur5e.pick@1", by="bob", note="recall")
    with pytest.raises(AdapterRefusedError, match="revoked"):
        registry.resolve_for_loading("ur5e.pick@1", base_fingerprint=BASE_FP, allow_unapproved=True)


def test_tampered_artifact_refused_at_load_and_reported(registry: Registry, tmp_path: Path) -> None:
    record = approved(registry, make_adapter_folder(tmp_path / "a"))
    assert registry.verify() == []
    blob = registry.artifact_path(record)
    flip_one_byte(blob)
    with pytest.raises(AdapterRefusedError, match="tampered or damaged"):
        registry.resolve_for_loading(record.adapter_id, base_fingerprint=BASE_FP)
    problems = registry.verify()
    assert [(p.kind, p.subject) for p in problems] == [("hash_mismatch", "ur5e.pick@1")]
    # re-registering the good weights repairs the blob (content addressing)
    registry.register(tmp_path / "a", "ur5e.pick")
    assert registry.verify() == []
    assert registry.resolve_for_loading(record.adapter_id, base_fingerprint=BASE_FP).record == record


def test_verify_reports_missing_orphans_and_gc_removes_only_those(registry: Registry, tmp_path: Path) -> None:
    record = registry.register(make_adapter_folder(tmp_path / "a"), "ur5e.pick")
    blob_dir = Path(registry.location) / "blobs" / "sha256"
    orphan = blob_dir / ("e" * 64 + ".safetensors")
    orphan.write_bytes(b"left behind")
    temp = blob_dir / f".{'d' * 64}.safetensors.abc123.part"
    temp.write_bytes(b"half")
    stray = blob_dir / "notes.txt"
    stray.write_text("not a blob")
    kinds = sorted(p.kind for p in registry.verify())
    assert kinds == ["orphan_blob", "stray_file", "temp_file"]
    assert registry.gc() == []  # younger than the default grace period
    removed = registry.gc(min_age_s=0)
    assert sorted(removed) == sorted([orphan, temp])
    assert [p.kind for p in registry.verify()] == ["stray_file"] and stray.exists()  # gc only removes its own
    stray.unlink()
    assert registry.verify() == [] and registry.artifact_path(record).is_file()
    assert registry.audit_log()[-1].action == "gc"
    registry.artifact_path(record).chmod(0o644)
    registry.artifact_path(record).unlink()
    assert [p.kind for p in registry.verify()] == ["missing_artifact"]
    with pytest.raises(AdapterRefusedError, match="missing"):
        registry.resolve_for_loading(record.adapter_id, base_fingerprint=BASE_FP, allow_unapproved=True)


def test_list_catalog_and_diff(registry: Registry, tmp_path: Path) -> None:
    approved(registry, make_adapter_folder(tmp_path / "a", seed=1))
    registry.register(make_adapter_folder(tmp_path / "b", seed=2), "ur5e.pick")
    registry.register(make_adapter_folder(tmp_path / "c", seed=3, base_fingerprint=OTHER_BASE_FP), "go2.walk")
    assert [r.adapter_id for r in registry.list()] == ["go2.walk@1", "ur5e.pick@1", "ur5e.pick@2"]
    assert [r.adapter_id for r in registry.list(status="approved")] == ["ur5e.pick@1"]
    assert [r.adapter_id for r in registry.list(base=OTHER_BASE_FP)] == ["go2.walk@1"]
    assert [r.adapter_id for r in registry.list(name="ur5e.pick")] == ["ur5e.pick@1", "ur5e.pick@2"]
    catalog = registry.catalog()
    assert [(c.adapter_id, c.status) for c in catalog] == [
        ("go2.walk@1", "draft"),
        ("ur5e.pick@1", "approved"),
        ("ur5e.pick@2", "draft"),
    ]
    changes = {key: (a, b) for key, a, b in registry.diff("ur5e.pick@1", "ur5e.pick@2")}
    assert changes["training_config.steps"] == (101, 102)
    assert changes["status"] == ("approved", "draft")
    assert changes["evaluation.passed"] == (True, None)
    assert "training_config.lr" not in changes and "rank" not in changes


def test_record_round_trips_through_dict(registry: Registry, tmp_path: Path) -> None:
    record = approved(registry, make_adapter_folder(tmp_path / "a"))
    data = json.loads(json.dumps(record.to_dict()))
    assert data["adapter_id"] == "ur5e.pick@1"
    assert AdapterRecord.from_dict(data) == record


def test_reopening_keeps_everything(tmp_path: Path) -> None:
    with open_registry(tmp_path / "r") as reg:
        record = approved(reg, make_adapter_folder(tmp_path / "a"))
    with open_registry(tmp_path / "r") as again:
        assert again.get("ur5e.pick") == record
        assert again.verify() == []


def test_default_location_comes_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSMOS_ROS_REGISTRY", str(tmp_path / "env-reg"))
    with open_registry() as reg:
        assert Path(reg.location) == tmp_path / "env-reg"
    assert (tmp_path / "env-reg" / "registry.sqlite3").is_file()


def test_loadable_weights_path_is_accepted_by_the_adapter_folder_contract(
    registry: Registry, tmp_path: Path
) -> None:
    """The generation node hands ``weights_path`` to the model's adapter reader, which goes by suffix."""
    from cosmos_ros.model.adapter_folder import weights_path

    record = approved(registry, make_adapter_folder(tmp_path / "a"))
    loadable = registry.resolve_for_loading(record.adapter_id, base_fingerprint=BASE_FP)
    assert weights_path(loadable.weights_path) == loadable.weights_path
    assert loadable.file_metadata() == {"format": "pt"}
