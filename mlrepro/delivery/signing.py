"""Signatures and attestations: ed25519 keys, DSSE envelopes around in-toto Statements.

Format (documented in README "Signed bundles and attestations")

* A key pair is ``NAME.key`` (PKCS#8 PEM, mode 0600) and ``NAME.pub`` (SubjectPublicKeyInfo
  PEM), made with ``cryptography``. A key's id is ``ed25519:`` + the SHA-256 of its 32 raw
  public bytes (hex): an unauthenticated hint, never a reason to accept a signature.
* Every signed thing is a DSSE envelope (``payload``, ``payloadType``, ``signatures``) whose
  payload is an in-toto Statement v1 (``_type``, ``subject``, ``predicateType``,
  ``predicate``). The signature is over DSSE's pre-authentication encoding
  ``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, so a signature
  made for one payload type never passes as another.
* A *bundle signature* has predicate type ``BUNDLE_PREDICATE`` and the bundle fingerprint
  (blake3 of its index, which commits to every member) as subject digest.
* A *verification attestation* (``mlrepro verify --attest``) has predicate type
  ``VERIFY_PREDICATE``, the model fingerprint as subject and the verify report as predicate.

Checking is strict and happens before anything is unpickled: envelope shape, base64, the
signature against each trusted key, then the statement's type and subject.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlrepro.errors import ArtifactError, UsageError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
BUNDLE_PREDICATE = "https://mlrepro.dev/attestation/bundle-signature/v1"
VERIFY_PREDICATE = "https://mlrepro.dev/attestation/verification/v1"
MAX_ENVELOPE_BYTES = 1 << 20
_FINGERPRINT_PREFIX = "b3:"


# ------------------------------------------------------------------------------ keys


def _crypto() -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return serialization, ed25519


def key_id(public_key: Any) -> str:
    serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class PublicKey:
    """A trusted ed25519 public key and where it came from."""

    key: Any
    id: str
    source: str

    def verify(self, signature: bytes, data: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class PrivateKey:
    key: Any
    id: str
    source: str

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


def keygen(name: str | Path, *, force: bool = False) -> dict[str, str]:
    """Write ``NAME.key`` (0600) and ``NAME.pub``; refuses to overwrite unless ``force``."""
    serialization, ed25519 = _crypto()
    base = Path(name)
    if base.suffix in (".key", ".pub"):
        base = base.with_suffix("")
    private, public = base.with_name(base.name + ".key"), base.with_name(base.name + ".pub")
    if not force:
        existing = [p for p in (private, public) if p.exists()]
        if existing:
            raise UsageError(
                f"{existing[0]} already exists; refusing to overwrite a key",
                hint="pick another NAME, or pass --force to replace the pair",
            )
    if not base.parent.is_dir():
        raise UsageError(
            f"folder {base.parent} does not exist", hint="create it first, or pick another NAME"
        )
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_private(private, pem)
    from mlrepro.core import atomic

    atomic.write_bytes(public, pub)
    return {
        "private_key": str(private),
        "public_key": str(public),
        "key_id": key_id(key.public_key()),
    }


def _write_private(path: Path, data: bytes) -> None:
    """Created 0600 from the start (never world-readable, even for an instant)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_key_file(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise UsageError(
            f"{what} {path} does not exist", hint="make a key pair with 'mlrepro keygen NAME'"
        )
    data = path.read_bytes()
    if len(data) > 64 * 1024:
        raise UsageError(f"{what} {path} is too large to be a key", hint="check the path")
    return data


def load_private_key(path: str | Path) -> PrivateKey:
    serialization, ed25519 = _crypto()
    path = Path(path)
    data = _read_key_file(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"private key {path} cannot be read ({str(exc).splitlines()[0][:120]})",
            hint="pass the NAME.key written by 'mlrepro keygen' (not NAME.pub)",
        ) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError(
            f"private key {path} is a {type(key).__name__}, not an ed25519 key",
            hint="make an ed25519 key pair with 'mlrepro keygen NAME'",
        )
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise UsageError(
            f"private key {path} is readable by other users "
            f"(mode {oct(path.stat().st_mode & 0o777)}); refusing to use it",
            hint=f"chmod 600 {path} (and consider the key compromised if others read it)",
        )
    return PrivateKey(key, key_id(key.public_key()), str(path))


def load_public_key(path: str | Path) -> PublicKey:
    serialization, ed25519 = _crypto()
    path = Path(path)
    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        hint = "pass the NAME.pub written by 'mlrepro keygen'"
        if b"PRIVATE KEY" in data:
            hint = "this is a private key: pass NAME.pub, and keep NAME.key secret"
        raise UsageError(
            f"public key {path} cannot be read ({str(exc).splitlines()[0][:120]})", hint=hint
        ) from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UsageError(
            f"public key {path} is a {type(key).__name__}, not an ed25519 key",
            hint="use a key pair made with 'mlrepro keygen NAME'",
        )
    return PublicKey(key, key_id(key), str(path))


def trusted(keys: Iterable[str | Path | PublicKey] | None) -> tuple[PublicKey, ...]:
    """Public keys from paths (or already loaded keys); an empty tuple trusts nothing extra."""
    out = []
    for k in keys or ():
        out.append(k if isinstance(k, PublicKey) else load_public_key(k))
    return tuple(out)


# ------------------------------------------------------------------------------ DSSE


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding (lengths in bytes, as ASCII decimal)."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def _digest(fingerprint: str) -> dict[str, str]:
    if not fingerprint.startswith(_FINGERPRINT_PREFIX) or len(fingerprint) > 200:
        raise ArtifactError(
            f"{fingerprint[:40]!r} is not an mlrepro fingerprint, so it cannot be signed",
            hint="rebuild the bundle with 'mlrepro bundle'",
        )
    return {"blake3": fingerprint[len(_FINGERPRINT_PREFIX) :]}


def statement(subjects: Sequence[tuple[str, str]], predicate_type: str, predicate: Any) -> bytes:
    body = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": _digest(fp)} for name, fp in subjects],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def envelope(payload: bytes, key: PrivateKey) -> dict[str, Any]:
    sig = key.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": key.id, "sig": base64.b64encode(sig).decode("ascii")}],
    }


def sign_bundle(
    fingerprint: str, model_fingerprint: str, project: str, key: PrivateKey
) -> dict[str, Any]:
    """A DSSE envelope whose statement names the bundle (and its model) by fingerprint."""
    predicate = {
        "project": project,
        "bundle_fingerprint": fingerprint,
        "model_fingerprint": model_fingerprint,
        "signed_by": who(),
        "key_id": key.id,
    }
    subjects = [(f"{project}.mlrepro", fingerprint), ("model", model_fingerprint)]
    return envelope(statement(subjects, BUNDLE_PREDICATE, predicate), key)


def attest_verification(
    report: dict[str, Any], model_fingerprint: str, key: PrivateKey, environment: Any
) -> dict[str, Any]:
    """The signed statement ``mlrepro verify --attest`` writes."""
    predicate = {
        "project": report.get("project"),
        "reproduced": report.get("reproduced"),
        "exit_code": report.get("exit_code"),
        "cause": report.get("cause"),
        "as_of": report.get("as_of"),
        "offline": report.get("offline"),
        "stage": report.get("stage"),
        "tolerance": report.get("tolerance"),
        "verdicts": {s["stage"]: s.get("verdict") for s in report.get("stages", [])},
        "report": report,
        "environment": environment,
        "verified_by": who(),
        "verified_at": _now(),
        "key_id": key.id,
    }
    return envelope(statement([("model", model_fingerprint)], VERIFY_PREDICATE, predicate), key)


# ------------------------------------------------------------------------------ checking


@dataclass(frozen=True)
class Checked:
    """An envelope whose signature verified with ``key``; ``statement`` is what it signed."""

    key: PublicKey
    statement: dict[str, Any]

    @property
    def predicate(self) -> dict[str, Any]:
        pred = self.statement.get("predicate")
        return pred if isinstance(pred, dict) else {}

    def subject(self) -> list[str]:
        return subjects(self.statement)


def subjects(statement: Any) -> list[str]:
    """The fingerprints a statement names (its subjects' blake3 digests), in order."""
    found = statement.get("subject") if isinstance(statement, dict) else None
    out = []
    for s in found if isinstance(found, list) else []:
        digest = s.get("digest") if isinstance(s, dict) else None
        if isinstance(digest, dict) and isinstance(digest.get("blake3"), str):
            out.append(_FINGERPRINT_PREFIX + digest["blake3"])
    return out


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:  # DSSE allows URL-safe base64 too
        return base64.urlsafe_b64decode(value.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValueError("not valid base64") from None


def _parse(env: Any) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(payload, [(keyid, signature)]) of a well-formed envelope; ValueError says why not."""
    if not isinstance(env, dict):
        raise ValueError("it is not a JSON object")
    if env.get("payloadType") != PAYLOAD_TYPE:
        raise ValueError(f"its payloadType is {str(env.get('payloadType'))[:60]!r}")
    payload = _b64(env.get("payload"))
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise ValueError("it has no signatures")
    out = []
    for s in sigs[:16]:
        if not isinstance(s, dict):
            raise ValueError("a signature entry is not an object")
        raw = _b64(s.get("sig"))
        if len(raw) != 64:
            raise ValueError(f"a signature is {len(raw)} bytes, not 64 (truncated or damaged)")
        out.append((str(s.get("keyid") or ""), raw))
    return payload, out


def check_envelope(env: Any, keys: Sequence[PublicKey]) -> tuple[Checked | None, str]:
    """The envelope verified with one of ``keys``, or (None, why it did not)."""
    try:
        payload, sigs = _parse(env)
    except ValueError as exc:
        return None, f"a malformed signature envelope ({exc})"
    data = pae(PAYLOAD_TYPE, payload)
    for key in keys:
        if any(key.verify(sig, data) for _, sig in sigs):
            try:
                stmt = json.loads(payload)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return None, "a signed payload that is not JSON"
            if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
                return None, "a signed payload that is not an in-toto Statement v1"
            return Checked(key, stmt), ""
    ids = sorted({k for k, _ in sigs if k}) or ["(no key id)"]
    known = {k.id for k in keys}
    if any(k in known for k, _ in sigs):
        return None, f"a signature by key {ids[0]} that does not verify (damaged or forged)"
    return None, f"a signature by another key ({', '.join(i[:23] + '...' for i in ids[:3])})"


def envelopes_from(data: bytes | None, what: str) -> dict[str, list[Any]]:
    """The ``signatures.json`` member of a bundle: {"signatures": [...], "attestations": [...]}"""
    if data is None:
        return {"signatures": [], "attestations": []}
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ArtifactError(
            f"{what}: its signatures are not valid JSON; refusing to load it",
            hint="re-sign the bundle with 'mlrepro sign', or get an intact copy",
        ) from None
    if not isinstance(parsed, dict):
        parsed = {}
    out = {}
    for field in ("signatures", "attestations"):
        items = parsed.get(field, [])
        out[field] = items if isinstance(items, list) else []
    return out


def require_signed(
    fingerprint: str, envelopes: Sequence[Any], keys: Sequence[PublicKey], what: str
) -> Checked:
    """The bundle signature by a trusted key over exactly ``fingerprint``, or ArtifactError."""
    if not envelopes:
        raise ArtifactError(
            f"{what} is not signed, and a signature by a trusted key is required; "
            "refusing to load it (nothing was deserialized)",
            hint="sign it with 'mlrepro bundle --sign KEY' (or 'mlrepro sign BUNDLE --key KEY')",
        )
    reasons = []
    for env in envelopes[:16]:
        checked, why = check_envelope(env, keys)
        if checked is None:
            reasons.append(why)
            continue
        if checked.statement.get("predicateType") != BUNDLE_PREDICATE:
            reasons.append("a signed statement that is not a bundle signature")
            continue
        named = checked.subject()
        if fingerprint not in named[:1]:
            shown = named[0] if named else "nothing"
            reasons.append(f"a signature over another fingerprint ({shown[:24]}...)")
            continue
        return checked
    trusted_ids = ", ".join(k.id[:23] + "..." for k in keys)
    raise ArtifactError(
        f"{what} has no valid signature by a trusted key: it carries {'; '.join(reasons[:3])}; "
        "refusing to load it (nothing was deserialized)",
        hint=f"trusted: {trusted_ids}. Get a bundle signed with a trusted key, "
        "or pass the signer's public key with --trust",
    )


def describe(
    envelopes: dict[str, list[Any]], fingerprint: str, model_fp: str, keys: Sequence[PublicKey] = ()
) -> list[dict[str, Any]]:
    """For ``inspect``: every signature and attestation, what it claims, and whether it holds.

    Without trusted keys nothing is checked (status "not checked"): a key id alone proves
    nothing about who signed.
    """
    out = []
    for kind, items in (
        ("signature", envelopes["signatures"]),
        ("attestation", envelopes["attestations"]),
    ):
        for env in items[:16]:
            entry: dict[str, Any] = {"kind": kind}
            try:
                payload, sigs = _parse(env)
                stmt = json.loads(payload)
            except (ValueError, UnicodeDecodeError):
                entry.update(status="malformed")
                out.append(entry)
                continue
            entry["key_ids"] = [k for k, _ in sigs]
            entry["predicate_type"] = stmt.get("predicateType") if isinstance(stmt, dict) else None
            pred = stmt.get("predicate") if isinstance(stmt, dict) else None
            pred = pred if isinstance(pred, dict) else {}
            want = fingerprint if kind == "signature" else model_fp
            expected_type = BUNDLE_PREDICATE if kind == "signature" else VERIFY_PREDICATE
            entry["subject_matches"] = (
                want in subjects(stmt) and entry["predicate_type"] == expected_type
            )
            if kind == "attestation":
                entry.update(
                    reproduced=pred.get("reproduced"),
                    verdicts=pred.get("verdicts"),
                    as_of=pred.get("as_of"),
                    verified_by=pred.get("verified_by"),
                    verified_at=pred.get("verified_at"),
                )
            else:
                entry["signed_by"] = pred.get("signed_by")
            if keys:
                checked, why = check_envelope(env, keys)
                entry["status"] = (
                    "trusted"
                    if checked and entry["subject_matches"]
                    else "untrusted: " + (why or "subject does not match")
                )
            else:
                entry["status"] = "not checked (no --trust key)"
            out.append(entry)
    return out


def check_attestation(
    envelopes: Sequence[Any], model_fp: str, keys: Sequence[PublicKey], what: str
) -> Checked:
    """A verification attestation of ``model_fp`` that reproduced, signed by a trusted key."""
    if not envelopes:
        raise ArtifactError(
            f"{what} carries no verification attestation, and one is required",
            hint="run 'mlrepro verify --attest KEY -o verification.json', then "
            "'mlrepro bundle --sign KEY --attestation verification.json'",
        )
    reasons = []
    for env in envelopes[:16]:
        checked, why = check_envelope(env, keys)
        if checked is None:
            reasons.append(why)
            continue
        if checked.statement.get("predicateType") != VERIFY_PREDICATE:
            reasons.append("a statement that is not a verification attestation")
        elif model_fp not in checked.subject():
            reasons.append("an attestation of another model")
        elif checked.predicate.get("reproduced") is not True:
            reasons.append(
                f"an attestation whose verification did not reproduce "
                f"(cause: {checked.predicate.get('cause')})"
            )
        else:
            return checked
    raise ArtifactError(
        f"{what} has no valid verification attestation: it carries {'; '.join(reasons[:3])}",
        hint="verify the project again ('mlrepro verify --attest KEY -o FILE') and rebundle "
        "with --attestation FILE; pass the attester's public key with --trust",
    )


def read_envelope_file(path: str | Path) -> dict[str, Any]:
    """An attestation file written by ``mlrepro verify --attest`` (shape-checked only)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"attestation {path} does not exist", hint="check the path")
    data = path.read_bytes()
    if len(data) > MAX_ENVELOPE_BYTES:
        raise UsageError(f"attestation {path} is implausibly large", hint="check the path")
    try:
        env = json.loads(data)
        _parse(env)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise UsageError(
            f"attestation {path} is not a DSSE envelope ({exc})",
            hint="pass the file written by 'mlrepro verify --attest KEY -o FILE'",
        ) from None
    return env


# ------------------------------------------------------------------------------ bundles


def bundle_envelopes(verified: Any) -> dict[str, list[Any]]:
    return envelopes_from(verified.signatures, f"bundle {verified.path.name}")


def check_bundle(verified: Any, keys: Sequence[PublicKey]) -> Checked | None:
    """With trusted ``keys``: the bundle's valid signature, or ArtifactError. Without: None."""
    if not keys:
        return None
    found = bundle_envelopes(verified)["signatures"]
    return require_signed(verified.fingerprint, found, keys, f"bundle {verified.path.name}")


def sign_file(
    path: str | Path,
    key: PrivateKey,
    *,
    attestations: Sequence[dict[str, Any]] = (),
    output: str | Path | None = None,
) -> dict[str, Any]:
    """Add a signature by ``key`` (and attestations) to a bundle; its fingerprint is unchanged.

    The bundle is verified first; an earlier signature by the same key is replaced, other
    signatures are kept. An attestation must name this bundle's model and be signed by
    ``key`` or carry a valid signature by some key (checked again at load time with
    ``--trust``).
    """
    from mlrepro.delivery import bundle as fmt

    verified = fmt.read_verified(path)
    model_fp = str(verified.index.get("model_fingerprint"))
    project = str(verified.index.get("project") or verified.path.stem)
    found = bundle_envelopes(verified)
    signatures = [e for e in found["signatures"] if key.id not in _key_ids(e)]
    signatures.append(sign_bundle(verified.fingerprint, model_fp, project, key))
    atts = list(found["attestations"])
    for env in attestations:
        try:
            payload, _ = _parse(env)
            stmt = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            stmt = None
        if (
            not isinstance(stmt, dict)
            or stmt.get("predicateType") != VERIFY_PREDICATE
            or model_fp not in subjects(stmt)
        ):
            raise UsageError(
                f"the attestation is not a verification of this bundle's model {model_fp[:20]}...",
                hint="pass the verification.json written by 'mlrepro verify --attest' for the "
                "project this bundle was built from (after the same 'mlrepro run')",
            )
        if env not in atts:
            atts.append(env)
    data = (
        json.dumps({"signatures": signatures, "attestations": atts}, indent=2, sort_keys=True)
        + "\n"
    ).encode("utf-8")
    target = Path(output) if output is not None else verified.path
    fmt.write_signed(verified, target, data)
    return {
        "bundle": str(target),
        "fingerprint": verified.fingerprint,
        "model_fingerprint": model_fp,
        "key_id": key.id,
        "signatures": len(signatures),
        "attestations": len(atts),
    }


def _key_ids(env: Any) -> set[str]:
    sigs = env.get("signatures") if isinstance(env, dict) else None
    return {str(s.get("keyid")) for s in sigs or [] if isinstance(s, dict)}
