"""Export/import bundles: identical records across registries, and hostile archives refused."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import asdict
from pathlib import Path

import pytest
from registry_helpers import BASE_FP, eval_results, make_adapter_folder

from cosmos_ros.registry import AdapterRefusedError, BundleError, Registry, open_registry
from cosmos_ros.registry.artifacts import ArtifactError


@pytest.fixture()
def source(tmp_path: Path) -> Registry:
    reg = open_registry(tmp_path / "site-a")
    first = reg.register(make_adapter_folder(tmp_path / "a", seed=1), "ur5e.pick", created_by="alice")
    reg.promote(first.adapter_id, by="alice", note="ready")
    reg.attach_evaluation(first.adapter_id, eval_results(), by="eval-bot")
    reg.approve(first.adapter_id, by="bob", note="good")
    reg.register(make_adapter_folder(tmp_path / "b", seed=2), "ur5e.pick", parent=first.adapter_id)
    yield reg
    reg.close()


def test_export_import_keeps_the_artifact_and_record_but_not_the_approval(
    source: Registry, tmp_path: Path
) -> None:
    bundle = source.export_bundle("ur5e.pick@2", tmp_path / "pick2.tar")
    parent_bundle = source.export_bundle("ur5e.pick@approved", tmp_path / "pick1.tar")
    with open_registry(tmp_path / "site-b") as target:
        imported_parent = target.import_bundle(parent_bundle, by="carol")
        imported = target.import_bundle(bundle, by="carol")
        for ref, copy in (("ur5e.pick@1", imported_parent), ("ur5e.pick@2", imported)):
            original = source.get(ref)
            immutable = ("artifact_sha256", "base_fingerprint", "training_config", "metrics", "parent")
            assert {k: getattr(copy, k) for k in immutable} == {k: getattr(original, k) for k in immutable}
            assert (copy.created_by, copy.created_at) == (original.created_by, original.created_at)
            assert target.artifact_path(copy).read_bytes() == source.artifact_path(original).read_bytes()
            assert (
                hashlib.sha256(target.artifact_path(copy).read_bytes()).hexdigest()
                == original.artifact_sha256
            )
            # what the exporter said is provenance, never this registry's status or evidence
            assert copy.provenance["exporter_status"] == original.status
            assert copy.provenance["exporter_history"] == [asdict(c) for c in original.history]
            assert copy.evaluations == [] and copy.history[0].by == "carol"
        assert imported_parent.status == "candidate" and imported.status == "draft"
        assert "exporter said: approved by bob" in imported_parent.history[0].note
        assert target.verify() == []
        with pytest.raises(AdapterRefusedError, match="candidate, not approved"):
            target.resolve_for_loading("ur5e.pick@1", base_fingerprint=BASE_FP)
        assert [e.action for e in target.audit_log()] == ["import", "import"]
        assert target.audit_log()[-1].actor == "carol"
        # importing again is a no-op; the next local registration continues the numbering
        assert target.import_bundle(bundle) == imported
        assert target.audit_log()[-1].action == "import:already_present"
        assert target.register(make_adapter_folder(tmp_path / "c", seed=3), "ur5e.pick").version == 3
        # this site's own gate approves it
        target.attach_evaluation("ur5e.pick@1", eval_results(), by="site-b-eval")
        target.approve("ur5e.pick@1", by="dave", note="passed our gate")
        assert target.resolve_for_loading("ur5e.pick", base_fingerprint=BASE_FP).adapter_id == "ur5e.pick@1"
    assert [e.action for e in source.audit_log()][-2:] == ["export", "export"]


def test_import_refuses_a_different_artifact_under_an_existing_version(
    source: Registry, tmp_path: Path
) -> None:
    bundle = source.export_bundle("ur5e.pick@1", tmp_path / "pick1.tar")
    with open_registry(tmp_path / "site-b") as target:
        target.register(make_adapter_folder(tmp_path / "other", seed=7), "ur5e.pick")
        with pytest.raises(BundleError, match="already exists here"):
            target.import_bundle(bundle)
        assert [r.version for r in target.list()] == [1]
        assert target.verify() == []  # refused before copying: no orphan blob


def _rewrite(bundle: Path, out: Path, edit) -> Path:
    """Copy a bundle member by member through ``edit(tarfile_out, info, data)``."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w") as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read()
            edit(dst, info, data)
    return out


def _add(dst: tarfile.TarFile, info: tarfile.TarInfo, data: bytes) -> None:
    info.size = len(data)
    dst.addfile(info, io.BytesIO(data))


def _renamed(new_name: str):
    def edit(dst: tarfile.TarFile, info: tarfile.TarInfo, data: bytes) -> None:
        if info.name.startswith("artifact/"):
            info.name = new_name
        _add(dst, info, data)

    return edit


def _with_extra(extra: tarfile.TarInfo, payload: bytes = b""):
    def edit(dst: tarfile.TarFile, info: tarfile.TarInfo, data: bytes) -> None:
        _add(dst, info, data)
        if info.name == "bundle.json":
            if extra.isreg():
                _add(dst, extra, payload)
            else:
                dst.addfile(extra)

    return edit


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def _hardlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE
    info.linkname = target
    return info


def _record_edit(**changes):
    def edit(dst: tarfile.TarFile, info: tarfile.TarInfo, data: bytes) -> None:
        if info.name == "bundle.json":
            manifest = json.loads(data)
            manifest["record"].update(changes)
            data = json.dumps(manifest).encode()
        _add(dst, info, data)

    return edit


def _pickle_artifact(dst: tarfile.TarFile, info: tarfile.TarInfo, data: bytes) -> None:
    """Swap the artifact for pickle bytes and make the manifest agree, so only the format check is left."""
    pickle_bytes = b"\x80\x04\x95" + b"cos\nsystem\n(S'echo pwned'\ntR." + b"\0" * 32
    digest = hashlib.sha256(pickle_bytes).hexdigest()
    if info.name == "bundle.json":
        manifest = json.loads(data)
        manifest["record"].update(artifact_sha256=digest, artifact_size=len(pickle_bytes))
        manifest["artifact"] = f"artifact/{digest}.safetensors"
        _add(dst, info, json.dumps(manifest).encode())
    else:
        info.name = f"artifact/{digest}.safetensors"
        _add(dst, info, pickle_bytes)


def _flip_artifact_byte(dst: tarfile.TarFile, info: tarfile.TarInfo, data: bytes) -> None:
    if info.name.startswith("artifact/"):
        data = data[:-1] + bytes([data[-1] ^ 1])
    _add(dst, info, data)


HOSTILE = {
    "absolute path": (_with_extra(tarfile.TarInfo("/etc/cron.d/evil"), b"x"), "absolute path"),
    "dotdot": (_with_extra(tarfile.TarInfo("artifact/../../evil"), b"x"), "path traversal"),
    "dotdot artifact": (_renamed("../artifact/x.safetensors"), "path traversal"),
    "symlink": (_with_extra(_symlink("artifact/link", "/etc/passwd")), "is a link"),
    "hardlink": (_with_extra(_hardlink("artifact/hard", "/etc/passwd")), "is a link"),
    "pickle artifact name": (_renamed("artifact/weights.bin"), "only safetensors"),
    "extra member": (_with_extra(tarfile.TarInfo("notes.txt"), b"hi"), "unexpected member"),
    "bad record name": (_record_edit(name="../escape"), "path separator"),
    "control char name": (_record_edit(name="pick\x1b[31m"), "control characters"),
    "bad status": (_record_edit(status="blessed"), "status 'blessed' is not accepted"),
    "bad tag": (_record_edit(tags=["../x"]), "tag"),
    "pickle artifact": (_pickle_artifact, "not a valid safetensors file"),
    "tampered artifact": (_flip_artifact_byte, "expected"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_bundles_are_refused_and_leave_nothing(source: Registry, tmp_path: Path, case: str) -> None:
    edit, message = HOSTILE[case]
    good = source.export_bundle("ur5e.pick@1", tmp_path / "good.tar")
    bad = _rewrite(good, tmp_path / "bad.tar", edit)
    with open_registry(tmp_path / "site-b") as target:
        with pytest.raises((BundleError, ArtifactError), match=message):
            target.import_bundle(bad)
        assert target.list() == [] and target.audit_log() == []
        assert target.verify() == []  # no blob, no temporary file left behind
    assert not (tmp_path / "evil").exists() and not (tmp_path / "site-b" / "evil").exists()


def test_not_a_bundle(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"definitely not a tar archive" * 40)
    with open_registry(tmp_path / "r") as registry, pytest.raises(BundleError, match="not a readable bundle"):
        registry.import_bundle(junk)
