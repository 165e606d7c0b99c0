"""Signed adapters (issue 18): export + sign on registry A, import on registry B under B's policy.

Real OpenSSF model-signing with elliptic-curve keys generated here; bundles are tampered with by
rewriting the archive as an attacker would. Every import goes through the real CLI.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from registry_helpers import BASE_FP, assert_clean_error, eval_results, make_adapter_folder, run

from cosmos_ros.cli import main
from cosmos_ros.model.adapter_folder import WEIGHTS_NAME
from cosmos_ros.registry import AdapterRefusedError, open_registry


def assert_refused(code: int, err: str, bundle: Path, *fragments: str) -> None:
    assert_clean_error(code, err, str(bundle), *fragments)


def make_keys(folder: Path, name: str) -> tuple[Path, Path, str]:
    """An EC P-256 key pair as PEM files; returns (private, public, fingerprint)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = folder / f"{name}.pem"
    public = folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public.write_bytes(pub_pem)
    return private, public, "sha256:" + hashlib.sha256(pub_pem).hexdigest()


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    """Registry A with arm.pick@1 approved through its gate; registry B requiring signatures from A's key."""
    keys = tmp_path / "keys"
    keys.mkdir()
    a_private, a_public, a_fp = make_keys(keys, "site_a")
    m_private, _, m_fp = make_keys(keys, "mallory")
    reg_a, reg_b = tmp_path / "A", tmp_path / "B"
    with open_registry(reg_a) as registry:
        registry.register(make_adapter_folder(tmp_path / "w1", seed=1), "arm.pick", status="candidate")
        registry.attach_evaluation("arm.pick@1", eval_results(passed=True), by="a-eval")
        registry.approve("arm.pick@1", by="alice", note="passed A's gate")
        registry.register(make_adapter_folder(tmp_path / "w2", seed=2), "arm.place", status="candidate")
    code, _, err = run(
        capsys, "policy", "--registry", str(reg_b), "--require-signatures", "--trust-key", str(a_public)
    )
    assert code == 0, err
    return {
        "A": reg_a,
        "B": reg_b,
        "key": a_private,
        "fp": a_fp,
        "mallory": m_private,
        "mallory_fp": m_fp,
        "tmp": tmp_path,
    }


def export(
    capsys: pytest.CaptureFixture[str], site: dict[str, object], ref: str, out: Path, key: object
) -> Path:
    args = ["export", ref, "-o", str(out), "--registry", str(site["A"])]
    if key is not None:
        args += ["--sign-key", str(key)]
    code, _, err = run(capsys, *args)
    assert code == 0, err
    return out


def import_into_b(
    capsys: pytest.CaptureFixture[str], site: dict[str, object], bundle: Path
) -> tuple[int, str, str]:
    return run(capsys, "import", str(bundle), "--registry", str(site["B"]), "--by", "bob")


def rewrite(bundle: Path, out: Path, edit: object) -> Path:
    """Copy ``bundle`` member by member, letting ``edit(members)`` change the {name: bytes} mapping."""
    with tarfile.open(bundle) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    edit(members)  # type: ignore[operator]
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def assert_not_imported(site: dict[str, object], name: str = "arm.pick") -> None:
    with open_registry(site["B"]) as registry:  # type: ignore[arg-type]
        assert [r.adapter_id for r in registry.list() if r.name == name] == []


# ---- refused ----------------------------------------------------------------------------------------
def test_an_unsigned_bundle_is_refused_where_signatures_are_required(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = export(capsys, site, "arm.pick@1", site["tmp"] / "plain.tar", None)  # type: ignore[operator]
    code, _, err = import_into_b(capsys, site, bundle)
    assert_refused(code, err, bundle, "bundle is unsigned", "requires signatures")
    assert_not_imported(site)


def test_a_bundle_signed_by_an_untrusted_key_is_refused(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = export(capsys, site, "arm.pick@1", site["tmp"] / "m.tar", site["mallory"])  # type: ignore[operator]
    code, _, err = import_into_b(capsys, site, bundle)
    assert_refused(code, err, bundle, f"signed by key {site['mallory_fp']}", "not trusted here")
    assert_not_imported(site)


def test_a_manifest_changed_after_signing_is_refused(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    signed = export(capsys, site, "arm.pick@1", site["tmp"] / "s.tar", site["key"])  # type: ignore[operator]

    def relabel(members: dict[str, bytes]) -> None:
        manifest = json.loads(members["bundle.json"])
        manifest["record"]["note"] = "edited after signing"
        members["bundle.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()

    bundle = rewrite(signed, site["tmp"] / "edited.tar", relabel)  # type: ignore[operator]
    code, _, err = import_into_b(capsys, site, bundle)
    assert_refused(code, err, bundle, "signature does not match", "changed after signing")
    assert_not_imported(site)


def test_an_artifact_changed_after_signing_is_refused_with_or_without_a_matching_manifest(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp: Path = site["tmp"]  # type: ignore[assignment]
    signed = export(capsys, site, "arm.pick@1", tmp / "s.tar", site["key"])
    other = (make_adapter_folder(tmp / "evil", seed=9) / WEIGHTS_NAME).read_bytes()
    digest = hashlib.sha256(other).hexdigest()

    def swap_weights(members: dict[str, bytes]) -> None:  # the manifest (and signature) untouched
        (name,) = [n for n in members if n.startswith("artifact/")]
        members[name] = other

    def swap_and_fix_manifest(members: dict[str, bytes]) -> None:  # a careful attacker
        (name,) = [n for n in members if n.startswith("artifact/")]
        del members[name]
        manifest = json.loads(members["bundle.json"])
        manifest["artifact"] = f"artifact/{digest}.safetensors"
        manifest["record"].update(artifact_sha256=digest, artifact_size=len(other))
        members["bundle.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()
        members[f"artifact/{digest}.safetensors"] = other

    plain_swap = rewrite(signed, tmp / "swap.tar", swap_weights)
    code, _, err = import_into_b(capsys, site, plain_swap)
    assert code == 1 and str(plain_swap) in err and "Traceback" not in err, err
    careful = rewrite(signed, tmp / "careful.tar", swap_and_fix_manifest)
    code, _, err = import_into_b(capsys, site, careful)
    assert_refused(code, err, careful, "signature does not match")
    assert_not_imported(site)


def test_a_trusted_keys_signature_that_does_not_verify_is_refused_even_where_not_required(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "policy", "--registry", str(site["B"]), "--no-require-signatures")
    signed = export(capsys, site, "arm.pick@1", site["tmp"] / "s.tar", site["key"])  # type: ignore[operator]

    def relabel(members: dict[str, bytes]) -> None:
        members["bundle.json"] = members["bundle.json"].replace(b'"arm.pick"', b'"arm.pick2"')

    bundle = rewrite(signed, site["tmp"] / "edited.tar", relabel)  # type: ignore[operator]
    code, _, err = import_into_b(capsys, site, bundle)
    assert_refused(code, err, bundle, "signature does not match")


# ---- accepted ---------------------------------------------------------------------------------------
def test_a_correctly_signed_bundle_lands_as_a_candidate_by_default(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = export(capsys, site, "arm.pick@1", site["tmp"] / "s.tar", site["key"])  # type: ignore[operator]
    with tarfile.open(bundle) as tar:
        assert tar.getnames()[:2] == ["bundle.json", "bundle.sig"]  # the signature travels inside
    code, out, err = import_into_b(capsys, site, bundle)
    assert code == 0, err
    assert "(candidate)" in out
    with open_registry(site["B"]) as registry:  # type: ignore[arg-type]
        record = registry.get("arm.pick@1")
        assert record.status == "candidate"
        assert record.provenance["signature"]["signer"] == site["fp"]
        assert record.provenance["signature"]["verified"] is True
        assert registry.audit_log("arm.pick@1")[-1].details["signature"]["signer"] == site["fp"]
        with pytest.raises(AdapterRefusedError, match="candidate, not approved"):
            registry.resolve_for_loading("arm.pick@1", base_fingerprint=BASE_FP)
    code, out, _ = run(capsys, "show", "arm.pick@1", "--registry", str(site["B"]))
    assert code == 0 and f"signed by {site['fp']} (verified against a trusted key)" in out, out


def test_keep_signed_approval_keeps_a_trusted_exporters_approval_and_nothing_else(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp: Path = site["tmp"]  # type: ignore[assignment]
    code, out, err = run(capsys, "policy", "--registry", str(site["B"]), "--keep-signed-approval")
    assert code == 0 and "keep_signed_approval: true" in out, err
    approved = export(capsys, site, "arm.pick@1", tmp / "pick.tar", site["key"])
    candidate = export(capsys, site, "arm.place@1", tmp / "place.tar", site["key"])
    assert import_into_b(capsys, site, approved)[0] == 0
    assert import_into_b(capsys, site, candidate)[0] == 0
    with open_registry(site["B"]) as registry:  # type: ignore[arg-type]
        pick = registry.get("arm.pick@1")
        assert pick.status == "approved"
        assert "approval kept: signed by trusted key" in (pick.history[-1].note or "")
        assert registry.resolve_for_loading("arm.pick@approved", base_fingerprint=BASE_FP).adapter_id == (
            "arm.pick@1"
        )
        assert registry.get("arm.place@1").status == "candidate"  # the exporter had not approved it
        assert registry.verify() == []


def test_without_required_signatures_an_unknown_signer_is_recorded_and_never_approved(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "policy", "--registry", str(site["B"]), "--no-require-signatures", "--keep-signed-approval")
    bundle = export(capsys, site, "arm.pick@1", site["tmp"] / "m.tar", site["mallory"])  # type: ignore[operator]
    code, _, err = import_into_b(capsys, site, bundle)
    assert code == 0, err
    with open_registry(site["B"]) as registry:  # type: ignore[arg-type]
        record = registry.get("arm.pick@1")
        assert record.status == "candidate"
        assert record.provenance["signature"] == {
            "signer": site["mallory_fp"],
            "verified": False,
            "why": "signer's key is not trusted here",
        }


def test_a_key_untrusted_after_import_stops_its_versions_loading(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    """Untrusting a key recalls what it signed: ``name@approved`` no longer loads (policy re-checked)."""
    from cosmos_ros.registry.policy import LoadingPolicy

    run(capsys, "policy", "--registry", str(site["B"]), "--keep-signed-approval")
    bundle = export(capsys, site, "arm.pick@1", site["tmp"] / "s.tar", site["key"])  # type: ignore[operator]
    assert import_into_b(capsys, site, bundle)[0] == 0
    with open_registry(site["B"]) as registry:  # type: ignore[arg-type]
        assert LoadingPolicy("arm.pick@approved").resolve(registry, BASE_FP).adapter_id == "arm.pick@1"
    code, _, err = run(capsys, "policy", "--registry", str(site["B"]), "--untrust-key", str(site["fp"]))
    assert code == 0, err
    with open_registry(site["B"]) as registry:  # type: ignore[arg-type]
        with pytest.raises(AdapterRefusedError) as caught:
            LoadingPolicy("arm.pick@approved").resolve(registry, BASE_FP)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("arm.pick@1 ")
    assert f"signed by {site['fp']}, which is no longer a trusted key here" in message
    assert "require_signatures: true" in message


def test_an_unsigned_import_stops_loading_once_signatures_are_required(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "policy", "--registry", str(site["B"]), "--no-require-signatures")
    bundle = export(capsys, site, "arm.pick@1", site["tmp"] / "u.tar", None)  # type: ignore[operator]
    assert import_into_b(capsys, site, bundle)[0] == 0
    with open_registry(site["B"]) as registry:  # type: ignore[arg-type]
        registry.approve("arm.pick@1", by="bob", note="ok", force_reason="reviewed by hand")
        registry.register(make_adapter_folder(site["tmp"] / "own", seed=7), "arm.own", status="candidate")
        registry.attach_evaluation("arm.own@1", eval_results(passed=True), by="b-eval")
        registry.approve("arm.own@1", by="bob", note="passed B's gate")
        assert registry.resolve_for_loading("arm.pick@approved", base_fingerprint=BASE_FP)
    run(capsys, "policy", "--registry", str(site["B"]), "--require-signatures")
    with open_registry(site["B"]) as registry:  # type: ignore[arg-type]
        with pytest.raises(
            AdapterRefusedError, match=r"^arm\.pick@1 was imported unsigned, and .*policy\.yaml"
        ):
            registry.resolve_for_loading("arm.pick@approved", base_fingerprint=BASE_FP)
        # A version registered here is this site's own: the signature policy does not apply to it.
        assert registry.resolve_for_loading("arm.own@approved", base_fingerprint=BASE_FP)


def test_policy_changes_are_audited_with_who_and_what(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    reg_b: Path = site["B"]  # type: ignore[assignment]
    code, _, err = run(capsys, "policy", "--registry", str(reg_b), "--keep-signed-approval", "--by", "carol")
    assert code == 0, err
    with open_registry(reg_b) as registry:
        entries = [e for e in registry.audit_log() if e.action == "policy"]
    first, last = entries[0], entries[-1]
    assert first.details["changes"]["require_signatures"] == [False, True]  # the fixture's change
    assert first.details["changes"]["trusted_keys_added"] == [f"trusted_keys/{str(site['fp'])[7:]}.pem"]
    assert last.actor == "carol"
    assert last.details["changes"] == {"keep_signed_approval": [False, True]}
    assert last.details["policy_sha256"] == hashlib.sha256((reg_b / "policy.yaml").read_bytes()).hexdigest()
    code, out, _ = run(capsys, "log", "--registry", str(reg_b))
    assert code == 0 and "carol" in out and "keep_signed_approval" in out, out
    assert run(capsys, "verify", "--registry", str(reg_b))[0] == 0


def test_a_hand_edited_policy_is_reported_by_verify_and_refused_at_import_until_accepted(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    reg_b: Path = site["B"]  # type: ignore[assignment]
    policy_file = reg_b / "policy.yaml"
    policy_file.write_text(
        policy_file.read_text().replace("require_signatures: true", "require_signatures: false")
    )
    code, out, err = run(capsys, "verify", "--registry", str(reg_b), "--json")
    assert code == 1, err
    problems = json.loads(out)
    assert [p["kind"] for p in problems] == ["policy_changed"], problems
    assert "changed by hand" in problems[0]["message"] and "adapters policy" in problems[0]["message"]
    unsigned = export(capsys, site, "arm.pick@1", site["tmp"] / "u.tar", None)  # type: ignore[operator]
    code, _, err = import_into_b(capsys, site, unsigned)
    assert_refused(code, err, unsigned, "policy.yaml was changed by hand", "run 'cosmos-ros adapters policy")
    assert_not_imported(site)
    code, out, err = run(capsys, "policy", "--registry", str(reg_b), "--by", "carol")  # reviewed: accepted
    assert code == 0 and "accepted the hand edit" in out and "require_signatures: false" in out, err
    assert run(capsys, "verify", "--registry", str(reg_b))[0] == 0
    assert import_into_b(capsys, site, unsigned)[0] == 0
    with open_registry(reg_b) as registry:
        last = [e for e in registry.audit_log() if e.action == "policy"][-1]
        assert last.actor == "carol" and last.details["accepted_hand_edit"] is True


def test_a_hand_edited_policy_stops_imported_versions_loading(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    reg_b: Path = site["B"]  # type: ignore[assignment]
    run(capsys, "policy", "--registry", str(reg_b), "--keep-signed-approval")
    bundle = export(capsys, site, "arm.pick@1", site["tmp"] / "s.tar", site["key"])  # type: ignore[operator]
    assert import_into_b(capsys, site, bundle)[0] == 0
    with (reg_b / "policy.yaml").open("a") as handle:
        handle.write("# edited\n")
    with open_registry(reg_b) as registry:
        with pytest.raises(AdapterRefusedError, match=r"^arm\.pick@1 is imported, and .*changed by hand"):
            registry.resolve_for_loading("arm.pick@approved", base_fingerprint=BASE_FP)


# ---- policy and keys --------------------------------------------------------------------------------
def test_policy_defaults_and_help(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "policy", "--registry", str(tmp_path / "r"))
    assert code == 0, err
    assert "require_signatures: false" in out and "keep_signed_approval: false" in out
    assert not (tmp_path / "r" / "policy.yaml").exists()  # showing it changes nothing
    with pytest.raises(SystemExit):
        main(["adapters", "policy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "require_signatures false" in text and "keep_signed_approval false" in text


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("require_signatures: yes please\n", "field require_signatures is 'yes please'"),
        ("trusted_keys: key.pem\n", "field trusted_keys is 'key.pem'"),
        ("requires_signatures: true\n", "unknown field(s) ['requires_signatures']"),
        ("trusted_keys: [missing.pem]\n", "trusted_keys entry 'missing.pem'"),
    ],
)
def test_a_bad_policy_file_is_a_one_line_error(
    site: dict[str, object], capsys: pytest.CaptureFixture[str], content: str, fragment: str
) -> None:
    (site["B"] / "policy.yaml").write_text(content)  # type: ignore[operator]
    signed = export(capsys, site, "arm.pick@1", site["tmp"] / "s.tar", site["key"])  # type: ignore[operator]
    code, _, err = import_into_b(capsys, site, signed)
    assert code == 1 and err.count("\n") == 1 and "policy.yaml" in err and fragment in err, err


def test_a_bad_signing_key_writes_no_bundle(
    site: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp: Path = site["tmp"]  # type: ignore[assignment]
    rsa_like = tmp / "keys" / "site_a.pub.pem"  # a public key is not a signing key
    out = tmp / "never.tar"
    code, _, err = run(
        capsys,
        "export",
        "arm.pick@1",
        "-o",
        str(out),
        "--registry",
        str(site["A"]),
        "--sign-key",
        str(rsa_like),
    )
    assert code == 1 and "signing key" in err and str(rsa_like) in err and err.count("\n") == 1, err
    assert not out.exists()


def test_untrust_key_removes_it(site: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "policy", "--registry", str(site["B"]), "--untrust-key", str(site["fp"]))
    assert code == 0 and "trusted_keys: none" in out, err
    bundle = export(capsys, site, "arm.pick@1", site["tmp"] / "s.tar", site["key"])  # type: ignore[operator]
    code, _, err = import_into_b(capsys, site, bundle)
    assert_refused(code, err, bundle, "not trusted here")


def test_a_key_whose_file_is_gone_can_still_be_untrusted_by_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "r"
    reg.mkdir()
    (reg / "policy.yaml").write_text("require_signatures: true\ntrusted_keys: [gone.pem]\n")
    code, out, err = run(capsys, "policy", "--registry", str(reg), "--untrust-key", "gone.pem")
    assert code == 0 and "trusted_keys: none" in out, err


def test_only_elliptic_curve_public_keys_can_be_trusted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_pub = tmp_path / "rsa.pub.pem"
    rsa_pub.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    code, _, err = run(capsys, "policy", "--registry", str(tmp_path / "r"), "--trust-key", str(rsa_pub))
    assert code == 1 and f"public key {rsa_pub} is not accepted" in err and err.count("\n") == 1, err
    assert not (tmp_path / "r" / "policy.yaml").exists()
