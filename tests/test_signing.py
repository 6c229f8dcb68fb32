"""Signed bundles and verification attestations (ed25519, DSSE + in-toto Statement v1)."""

from __future__ import annotations

import base64
import json
import stat
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import run_cli
from registry_util import keys, models, signed

from mlrepro import load_bundle
from mlrepro.delivery import signing
from mlrepro.errors import ArtifactError

NEW_VISITS = (
    Path(__file__).resolve().parents[1] / "examples" / "diabetes" / "data" / "new_visits.csv"
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signing")


@pytest.fixture(scope="module")
def m(base: Path) -> dict[str, Path]:
    return models(base)


@pytest.fixture(scope="module")
def k(base: Path) -> dict[str, Path]:
    return keys(base)


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i.filename) for i in zf.infolist()}


def _rewrite(src: Path, dest: Path, signatures: bytes) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            if info.filename != "signatures.json":
                zout.writestr(info, zin.read(info.filename))
        zout.writestr("signatures.json", signatures)
    return dest


def test_pae_matches_the_dsse_spec_test_vector():
    got = signing.pae("http://example.com/HelloWorld", b"hello world")
    assert got == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_keygen_writes_a_private_key_only_the_owner_can_read(tmp_path):
    r = run_cli("keygen", str(tmp_path / "team"), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert stat.S_IMODE((tmp_path / "team.key").stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in (tmp_path / "team.pub").read_bytes()
    assert info["key_id"].startswith("ed25519:")
    again = run_cli("keygen", str(tmp_path / "team"))
    assert again.returncode == 2
    assert "already exists" in again.stderr and "--force" in again.stderr


def test_a_signed_bundle_loads_with_its_key_and_keeps_its_fingerprint(m, k, tmp_path):
    out = tmp_path / "a.signed.mlrepro"
    r = run_cli("sign", str(m["a"]), "--key", f"{k['me']}.key", "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    model = load_bundle(out, trusted_keys=[f"{k['me']}.pub"])
    assert model.fingerprint == load_bundle(m["a"]).fingerprint
    assert json.loads(r.stdout)["fingerprint"] == model.fingerprint
    p = run_cli(
        "predict",
        "--bundle",
        str(out),
        "--trust",
        f"{k['me']}.pub",
        "-i",
        str(NEW_VISITS),
        "-o",
        str(tmp_path / "p.csv"),
        "--json",
    )
    assert p.returncode == 0, p.stderr
    assert pd.read_csv(tmp_path / "p.csv")["model_fingerprint"].unique().tolist() == [
        model.model_fingerprint
    ]


def _no_unpickling(monkeypatch):
    import joblib

    def boom(*a, **kw):
        raise AssertionError("unpickled before the signature was checked")

    monkeypatch.setattr(joblib, "load", boom)


def test_an_unsigned_bundle_is_refused_under_trust_before_unpickling(m, k, tmp_path, monkeypatch):
    _no_unpickling(monkeypatch)
    with pytest.raises(ArtifactError) as err:
        load_bundle(m["a"], trusted_keys=[f"{k['me']}.pub"])
    assert "is not signed" in err.value.message and "nothing was deserialized" in err.value.message
    assert "--sign" in err.value.hint
    r = run_cli(
        "predict",
        "--bundle",
        str(m["a"]),
        "--trust",
        f"{k['me']}.pub",
        "-i",
        str(NEW_VISITS),
        "-o",
        str(tmp_path / "p.csv"),
    )
    assert r.returncode == 4 and "is not signed" in r.stderr
    assert not (tmp_path / "p.csv").exists()


def test_a_bundle_signed_by_another_key_is_refused(m, k, tmp_path, monkeypatch):
    out = signed(m["a"], k["other"], tmp_path / "other.mlrepro")
    _no_unpickling(monkeypatch)
    with pytest.raises(ArtifactError) as err:
        load_bundle(out, trusted_keys=[f"{k['me']}.pub"])
    assert "signature by another key" in err.value.message
    assert "--trust" in err.value.hint


def test_a_signature_over_another_fingerprint_is_refused(m, k, tmp_path, monkeypatch):
    donor = signed(m["b"], k["me"], tmp_path / "b.signed.mlrepro")
    # The genuine, valid signature of bundle b, copied into bundle a.
    forged = _rewrite(m["a"], tmp_path / "a.forged.mlrepro", _members(donor)["signatures.json"])
    _no_unpickling(monkeypatch)
    with pytest.raises(ArtifactError) as err:
        load_bundle(forged, trusted_keys=[f"{k['me']}.pub"])
    assert "over another fingerprint" in err.value.message


def test_a_truncated_signature_is_refused(m, k, tmp_path, monkeypatch):
    good = signed(m["a"], k["me"], tmp_path / "a.signed.mlrepro")
    sigs = json.loads(_members(good)["signatures.json"])
    raw = base64.b64decode(sigs["signatures"][0]["signatures"][0]["sig"])
    sigs["signatures"][0]["signatures"][0]["sig"] = base64.b64encode(raw[:40]).decode()
    bad = _rewrite(good, tmp_path / "a.truncated.mlrepro", json.dumps(sigs).encode())
    _no_unpickling(monkeypatch)
    r = run_cli(
        "predict",
        "--bundle",
        str(bad),
        "--trust",
        f"{k['me']}.pub",
        "-i",
        str(NEW_VISITS),
        "-o",
        str(tmp_path / "p.csv"),
    )
    assert r.returncode == 4
    assert "truncated or damaged" in r.stderr


def test_a_signed_payload_that_was_edited_is_refused(m, k, tmp_path):
    good = signed(m["a"], k["me"], tmp_path / "a.signed.mlrepro")
    sigs = json.loads(_members(good)["signatures.json"])
    payload = base64.b64decode(sigs["signatures"][0]["payload"]).replace(b"root", b"toor")
    payload = payload.replace(b'"project":"', b'"project":"x', 1)
    sigs["signatures"][0]["payload"] = base64.b64encode(payload).decode()
    bad = _rewrite(good, tmp_path / "a.edited.mlrepro", json.dumps(sigs).encode())
    with pytest.raises(ArtifactError) as err:
        load_bundle(bad, trusted_keys=[f"{k['me']}.pub"])
    assert "does not verify" in err.value.message


def test_garbage_signatures_are_an_artifact_error_not_a_crash(m, k, tmp_path):
    bad = _rewrite(m["a"], tmp_path / "a.garbage.mlrepro", b"\xff{not json")
    r = run_cli(
        "predict",
        "--bundle",
        str(bad),
        "--trust",
        f"{k['me']}.pub",
        "-i",
        str(NEW_VISITS),
        "-o",
        str(tmp_path / "p.csv"),
    )
    assert r.returncode == 4 and "signatures are not valid JSON" in r.stderr
    # without --trust the signatures are not needed: the bundle still loads
    assert load_bundle(bad).fingerprint == load_bundle(m["a"]).fingerprint


def test_bad_key_files_are_usage_errors(m, k, tmp_path):
    r = run_cli("sign", str(m["a"]), "--key", f"{k['me']}.pub")
    assert r.returncode == 2 and "cannot be read" in r.stderr
    r = run_cli(
        "predict",
        "--bundle",
        str(m["a"]),
        "--trust",
        f"{k['me']}.key",
        "-i",
        str(NEW_VISITS),
        "-o",
        str(tmp_path / "p.csv"),
    )
    assert r.returncode == 2 and "this is a private key" in r.stderr
    r = run_cli("sign", str(m["a"]), "--key", str(tmp_path / "missing.key"))
    assert r.returncode == 2 and "mlrepro keygen" in r.stderr


def test_verify_attest_bundle_sign_inspect_and_publish_require_attestation(m, k, tmp_path):
    project = m["project_a"]
    att = tmp_path / "verification.json"
    r = run_cli(
        "verify",
        "-p",
        str(project),
        "--offline",
        "--attest",
        f"{k['me']}.key",
        "-o",
        str(att),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    env = json.loads(att.read_text())
    statement = json.loads(base64.b64decode(env["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == signing.VERIFY_PREDICATE
    pred = statement["predicate"]
    assert pred["reproduced"] is True and pred["as_of"] and pred["verified_by"]
    assert set(pred["verdicts"]) >= {"extract", "features", "select", "train"}
    assert pred["tolerance"] == {"rtol": 1e-9, "atol": 1e-12} and pred["environment"]["python"]
    model_fp = load_bundle(m["a"]).model_fingerprint
    assert statement["subject"][0]["digest"]["blake3"] == model_fp.split(":", 1)[1]

    out = tmp_path / "attested.mlrepro"
    r = run_cli(
        "bundle",
        "-p",
        str(project),
        "-o",
        str(out),
        "--sign",
        f"{k['me']}.key",
        "--attestation",
        str(att),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    shown = run_cli("inspect", str(out), "--trust", f"{k['me']}.pub", "--json")
    kinds = {(p["kind"], p["status"]) for p in json.loads(shown.stdout)["provenance"]}
    assert kinds == {("signature", "trusted"), ("attestation", "trusted")}
    text = run_cli("inspect", str(out), "--trust", f"{k['other']}.pub").stdout
    assert "untrusted: a signature by another key" in text and "reproduced=True" in text

    reg = tmp_path / "registry"
    ok = run_cli(
        "publish",
        str(out),
        "--registry",
        str(reg),
        "--alias",
        "production",
        "--require-attestation",
        "--trust",
        f"{k['me']}.pub",
    )
    assert ok.returncode == 0, ok.stderr
    plain = signed(m["a"], k["me"], tmp_path / "no-attestation.mlrepro")
    refused = run_cli(
        "publish",
        str(plain),
        "--registry",
        str(reg),
        "--alias",
        "production",
        "--require-attestation",
        "--trust",
        f"{k['me']}.pub",
    )
    assert refused.returncode == 4 and "no verification attestation" in refused.stderr
    other = run_cli(
        "publish",
        str(out),
        "--registry",
        str(reg),
        "--alias",
        "production",
        "--require-attestation",
        "--trust",
        f"{k['other']}.pub",
    )
    assert other.returncode == 4 and "another key" in other.stderr
    no_trust = run_cli(
        "publish",
        str(out),
        "--registry",
        str(reg),
        "--alias",
        "production",
        "--require-attestation",
    )
    assert no_trust.returncode == 2 and "needs --trust" in no_trust.stderr
    history = run_cli(
        "registry", "history", "--registry", str(reg), "--alias", "production", "--json"
    )
    assert len(json.loads(history.stdout)["moves"]) == 1


def test_an_attestation_of_another_model_cannot_be_embedded(m, k, tmp_path):
    att = tmp_path / "verification.json"
    r = run_cli(
        "verify",
        "-p",
        str(m["project_a"]),
        "--offline",
        "-q",
        "--attest",
        f"{k['me']}.key",
        "-o",
        str(att),
    )
    assert r.returncode == 0, r.stderr
    bad = run_cli(
        "sign",
        str(m["b"]),
        "--key",
        f"{k['me']}.key",
        "--attestation",
        str(att),
        "-o",
        str(tmp_path / "b.mlrepro"),
    )
    assert bad.returncode == 2 and "not a verification of this bundle's model" in bad.stderr
    assert not (tmp_path / "b.mlrepro").exists()


def test_option_pairs_are_checked_before_any_work(m, k, tmp_path):
    r = run_cli("verify", "-p", str(m["project_a"]), "--attest", f"{k['me']}.key")
    assert r.returncode == 2 and "go together" in r.stderr
    r = run_cli(
        "bundle",
        "-p",
        str(m["project_a"]),
        "-o",
        str(tmp_path / "x.mlrepro"),
        "--attestation",
        str(tmp_path / "v.json"),
    )
    assert r.returncode == 2 and "--attestation needs --sign" in r.stderr
    assert not (tmp_path / "x.mlrepro").exists()
    r = run_cli(
        "bundle",
        "-p",
        str(m["project_a"]),
        "-o",
        str(tmp_path / "x.mlrepro"),
        "--sign",
        f"{k['me']}.key",
        "--attestation",
        str(tmp_path / "missing.json"),
    )
    assert r.returncode == 2 and "does not exist" in r.stderr
    assert not (tmp_path / "x.mlrepro").exists()


def test_signing_is_deterministic_and_resigning_replaces_the_same_key(m, k, tmp_path):
    one = signed(m["a"], k["me"], tmp_path / "one.mlrepro")
    two = signed(one, k["me"], tmp_path / "two.mlrepro")
    assert one.read_bytes() == two.read_bytes()
    both = signed(one, k["other"], tmp_path / "both.mlrepro")
    sigs = json.loads(_members(both)["signatures.json"])["signatures"]
    assert len(sigs) == 2
    for key in ("me", "other"):
        assert load_bundle(both, trusted_keys=[f"{k[key]}.pub"]).fingerprint


def test_a_private_key_others_can_read_is_refused(m, k, tmp_path):
    import shutil

    loose = tmp_path / "loose.key"
    shutil.copy(f"{k['me']}.key", loose)
    loose.chmod(0o644)
    r = run_cli("sign", str(m["a"]), "--key", str(loose), "-o", str(tmp_path / "x.mlrepro"))
    assert r.returncode == 2 and "readable by other users" in r.stderr and "chmod 600" in r.stderr
    assert not (tmp_path / "x.mlrepro").exists()


HOSTILE = [
    b"[]",
    b'{"signatures": "nope"}',
    b'{"signatures": [1, null, "x", []]}',
    b'{"signatures": [{"payload": "%%%", "payloadType": "application/vnd.in-toto+json",'
    b' "signatures": [{"sig": "AAAA"}]}]}',
    b'{"signatures": [{"payload": "e30=", "payloadType": "text/plain", "signatures": []}]}',
    b'{"signatures": [{"payload": "e30=", "payloadType": "application/vnd.in-toto+json",'
    b' "signatures": [{"keyid": 5, "sig": ""}]}]}',
]


@pytest.mark.parametrize("data", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_signature_members_are_refused_with_exit_4(m, k, tmp_path, data):
    bad = _rewrite(m["a"], tmp_path / "hostile.mlrepro", data)
    r = run_cli("predict", "--bundle", str(bad), "--trust", f"{k['me']}.pub", "-i", str(NEW_VISITS),
            "-o", str(tmp_path / "p.csv"))  # fmt: skip
    assert r.returncode == 4, r.stderr
    assert "refusing to load it" in r.stderr
    shown = run_cli("inspect", str(bad), "--trust", f"{k['me']}.pub", "--json")
    assert shown.returncode == 0, shown.stderr
