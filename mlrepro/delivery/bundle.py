"""Handoff bundles: one file holding what production needs, integrity-checked before use.

A bundle is a zip archive. Its first member, ``bundle.json`` (the index), lists every other
member with its size and blake3 hash; the bundle's fingerprint is the blake3 of the index
bytes, so it commits to every member. Reading verifies the index against the archive and
every member against the index *before* anything is parsed or unpickled; a mismatch is an
``ArtifactError`` (exit 4). Pinning the fingerprint (``expect=``) also defends against
someone who rewrites the index: see README "Embedded API and bundles".

Writing is deterministic (fixed member order, timestamps and compression): bundling the
same project twice gives a byte-identical file with the same fingerprint.

Only the standard library and blake3 are imported here, so ``mlrepro inspect`` is fast.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlrepro.errors import ArtifactError, UsageError
from mlrepro.fingerprint import hash_bytes
from mlrepro.pipeline.registry import TRAINED_STAGES
from mlrepro.project import lockfile
from mlrepro.version import __version__

BUNDLE_FORMAT = 2  # the newest this mlrepro reads; bundles without optional members are 1
SUFFIX = ".mlrepro"
INDEX = "bundle.json"
METADATA = "metadata.json"
SCHEMA = "schema.yaml"
CARD = "MODEL_CARD.md"
MANIFEST = "mlrepro.yaml"
LOCK = "mlrepro.lock"
PIPELINE = "pipeline.joblib"
MEMBERS = (METADATA, SCHEMA, CARD, MANIFEST, LOCK, PIPELINE)
# Optional members (format 2): the accelerated runtime (``mlrepro bundle --accelerate``).
# ACCELERATION records the equivalence figures, or why there is no program; PROGRAM is the
# compiled pipeline in mlrepro.accelerate's safe format (arrays and JSON, no pickle).
ACCELERATION = "acceleration.json"
PROGRAM = "pipeline.mlprog"
OPTIONAL = (ACCELERATION, PROGRAM)
# Signatures and attestations (DSSE envelopes, see delivery/signing.py). Not in the index:
# they sign the index's fingerprint, so adding them leaves the fingerprint unchanged.
SIGNATURES = "signatures.json"
MAX_INDEX_BYTES = 1 << 20
MAX_SIGNATURES_BYTES = 1 << 20

JSON_MEMBERS = (INDEX, METADATA, LOCK, ACCELERATION)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Hard caps checked against the zip directory *before* anything is decompressed.

    Defaults fit any real model (a 1 GiB pipeline, a few MiB of text); override them with
    the environment variables below (bytes, or a plain ratio), or pass ``limits=`` to
    ``read_verified`` / ``load_bundle``.
    """

    max_member: int = 1 << 30  # MLREPRO_BUNDLE_MAX_MEMBER: any one member, uncompressed
    max_total: int = 2 << 30  # MLREPRO_BUNDLE_MAX_TOTAL: all members, uncompressed
    max_ratio: float = 200.0  # MLREPRO_BUNDLE_MAX_RATIO: uncompressed / compressed size
    ratio_floor: int = 1 << 20  # members smaller than this are never too compressible
    max_depth: int = 64  # JSON nesting of bundle.json, metadata.json, mlrepro.lock

    @classmethod
    def from_env(cls) -> Limits:
        import os

        values: dict[str, Any] = {}
        for field_name, var, kind in (
            ("max_member", "MLREPRO_BUNDLE_MAX_MEMBER", int),
            ("max_total", "MLREPRO_BUNDLE_MAX_TOTAL", int),
            ("max_ratio", "MLREPRO_BUNDLE_MAX_RATIO", float),
        ):
            text = os.environ.get(var, "").strip()
            if not text:
                continue
            try:
                value = kind(text)
            except ValueError:
                value = -1
            if not value > 0:
                raise UsageError(
                    f"{var}={text!r} is not a positive number",
                    hint=f"set {var} to a number of bytes (or a ratio), or unset it",
                )
            values[field_name] = value
        return cls(**values)


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class VerifiedBundle:
    """The members of a bundle whose bytes all match its index (nothing deserialized)."""

    path: Path
    fingerprint: str  # blake3 of the index bytes
    index: dict[str, Any]
    members: dict[str, bytes]
    signatures: bytes | None = None  # the raw signatures.json member, unverified
    index_bytes: bytes = b""
    limits: Limits = Limits()  # what it was read with: nested archives get the same caps

    def text(self, name: str) -> str:
        try:
            return self.members[name].decode("utf-8")
        except UnicodeDecodeError:
            raise malformed(self.path, name, "is not UTF-8 text") from None

    def json(self, name: str) -> Any:
        from mlrepro.guards import safejson

        try:
            return safejson.loads(self.members[name])
        except safejson.TooDeep as exc:
            raise malformed(self.path, name, f"is {exc}") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise malformed(self.path, name, "is not valid JSON") from None

    def metadata(self) -> dict[str, Any]:
        meta = self.json(METADATA)
        if not isinstance(meta, dict):
            raise malformed(self.path, METADATA, "is not a JSON object")
        return meta


def malformed(path: Path, name: str, problem: str) -> ArtifactError:
    """A member whose bytes match the index but whose content is unusable."""
    return ArtifactError(
        f"bundle {path.name}: member {name} {problem}; refusing to load it",
        hint="rebuild the bundle with 'mlrepro bundle', or get an intact copy",
    )


# ------------------------------------------------------------------------------ writing


def _index(project: str, model_fp: str, members: dict[str, bytes]) -> bytes:
    index = {
        "bundle_format": 2 if any(n in members for n in OPTIONAL) else 1,
        "mlrepro_version": __version__,
        "project": project,
        "model_fingerprint": model_fp,
        "members": {
            name: {"size": len(data), "file_hash": hash_bytes(data)}
            for name, data in members.items()
        },
    }
    return (json.dumps(index, indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_archive(
    path: Path,
    project: str,
    model_fp: str,
    members: dict[str, bytes],
    *,
    index: bytes | None = None,
    signatures: bytes | None = None,
) -> str:
    """Write a bundle atomically; returns its fingerprint.

    ``index`` reuses the index bytes of an existing bundle (re-signing keeps its
    fingerprint); ``signatures`` adds the signatures member after the indexed ones.
    """
    from mlrepro.core import atomic

    if index is None:
        index = _index(project, model_fp, members)
    names = [*MEMBERS, *(n for n in OPTIONAL if n in members)]
    entries = [(INDEX, index), *((n, members[n]) for n in names)]
    if signatures is not None:
        entries.append((SIGNATURES, signatures))
    with atomic.atomic_path(Path(path)) as tmp:
        with zipfile.ZipFile(tmp, "w") as zf:
            for name, data in entries:
                info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data, compresslevel=6)
        tmp.chmod(0o644)
    return hash_bytes(index)


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _artifact(store: Any, record: dict[str, Any]) -> bytes:
    path = store.verified_path(record)
    data = path.read_bytes()
    if hash_bytes(data) != record["file_hash"]:  # changed since it was verified
        store.verified_path(record)
    return data


def write_signed(verified: VerifiedBundle, output: Path, signatures: bytes) -> None:
    """Rewrite a verified bundle with a new signatures member (same index, same fingerprint)."""
    write_archive(
        Path(output), "", "", verified.members, index=verified.index_bytes, signatures=signatures
    )


def build(manifest: Any, output: Path, *, accelerate: bool = False) -> dict[str, Any]:
    """Bundle a trained project; refuses when a training stage is stale or missing.

    With ``accelerate`` (or the manifest's ``model.accelerate``) the bundle also carries the
    compiled program and its equivalence record (``_acceleration``).
    """
    from mlrepro.core.sources import redact
    from mlrepro.delivery import card
    from mlrepro.pipeline.runner import Runner

    if Path(output).suffix != SUFFIX:
        raise UsageError(
            f"bundle file {Path(output).name} should end in '{SUFFIX}'",
            hint=f"e.g. -o {manifest.name}{SUFFIX}",
        )
    runner = Runner(manifest)
    for stage in TRAINED_STAGES:
        state = runner.assess(stage)
        if state.state != "up to date":
            raise UsageError(
                f"stage '{stage}' is {state.state} ({state.reason}): the bundle would not "
                "match the manifest",
                hint="run 'mlrepro run' first, then bundle",
            )
    lock = runner.lock
    metadata = card.metadata(manifest, lock)
    schema = _artifact(runner.store, runner.output("extract", "schema"))
    members = {
        METADATA: _json_bytes(metadata),
        SCHEMA: schema,
        CARD: card.render(metadata, schema.decode("utf-8")).encode("utf-8"),
        MANIFEST: redact(manifest.path.read_text(encoding="utf-8")).encode("utf-8"),
        LOCK: lockfile.dumps(lock),
        PIPELINE: _artifact(runner.store, runner.output("train", "pipeline")),
    }
    record = None
    if accelerate or manifest.model.accelerate:
        record, program = _acceleration(runner, metadata)
        members[ACCELERATION] = _json_bytes(record)
        if program is not None:
            members[PROGRAM] = program
    fingerprint = write_archive(Path(output), manifest.name, metadata["model_fingerprint"], members)
    info = {
        "bundle": str(output),
        "fingerprint": fingerprint,
        "model_fingerprint": metadata["model_fingerprint"],
        "project": manifest.name,
        "size": Path(output).stat().st_size,
    }
    if record is not None:
        info["acceleration"] = record
    return info


def _acceleration(runner: Any, metadata: dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
    """The program the train stage recorded (model.accelerate), else one compiled now."""
    from mlrepro.pipeline import compiled

    train = runner.lock["stages"]["train"]
    recorded = train.get("details", {}).get("acceleration")
    if "program" in train.get("outputs", {}):
        return recorded, _artifact(runner.store, runner.output("train", "program"))
    if isinstance(recorded, dict) and recorded.get("status") == "refused":
        return recorded, None  # the train stage already tried, on the same rows
    pipeline = runner.store.read_model(runner.output("train", "pipeline"), ("predict",))
    snapshot = runner.store.read_frame(runner.output("extract", "snapshot"))
    rows = compiled.input_rows(snapshot, list(metadata["input_columns"]))
    result = compiled.compile_checked(pipeline, rows, metadata["task"])
    return result.record, result.program


# ------------------------------------------------------------------------------ reading


def _refuse(path: Path, problem: str, hint: str | None = None) -> ArtifactError:
    return ArtifactError(
        f"bundle {path.name}: {problem}; refusing to load it (nothing was deserialized)",
        hint=hint or "rebuild the bundle with 'mlrepro bundle', or get an intact copy",
    )


def _check_ratio(path: Path, info: zipfile.ZipInfo, limits: Limits) -> None:
    if info.file_size < limits.ratio_floor:
        return
    ratio = info.file_size / max(info.compress_size, 1)
    if ratio > limits.max_ratio:
        raise _refuse(
            path,
            f"member {info.filename} would inflate {ratio:.0f}x ({info.compress_size} -> "
            f"{info.file_size} bytes), above the limit of {limits.max_ratio:g}x (a zip bomb?)",
            hint="if the bundle is genuine, raise MLREPRO_BUNDLE_MAX_RATIO",
        )


def _check_sizes(zf: zipfile.ZipFile, path: Path, limits: Limits) -> None:
    """Member and total sizes, and compression ratios, from the directory alone."""
    total = 0
    for info in zf.infolist():
        if info.file_size > limits.max_member:
            raise _refuse(
                path,
                f"member {info.filename} is {info.file_size} bytes uncompressed, above the "
                f"limit of {limits.max_member} bytes",
                hint="if the bundle is genuine, raise MLREPRO_BUNDLE_MAX_MEMBER",
            )
        _check_ratio(path, info, limits)
        total += info.file_size
    if total > limits.max_total:
        raise _refuse(
            path,
            f"its members add up to {total} bytes uncompressed, above the limit of "
            f"{limits.max_total} bytes",
            hint="if the bundle is genuine, raise MLREPRO_BUNDLE_MAX_TOTAL",
        )


def _check_yaml_depth(path: Path, members: dict[str, bytes], limits: Limits) -> None:
    """YAML parsers recurse per flow-style level too: bound it like JSON, before parsing."""
    from mlrepro.guards import safejson

    for name in (SCHEMA, MANIFEST):
        if safejson.depth(members[name], limits.max_depth) > limits.max_depth:
            raise malformed(path, name, f"is nested more than {limits.max_depth} levels deep")


def _read_member(zf: zipfile.ZipFile, path: Path, name: str, size: int) -> bytes:
    """Inflate one member in chunks, never past the size its directory entry declares."""
    out = bytearray()
    with zf.open(name) as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            out += chunk
            if len(out) > size:
                raise _refuse(path, f"member {name} inflates past its declared size")
    return bytes(out)


def _read_index(
    zf: zipfile.ZipFile, path: Path, expect: str | None, limits: Limits
) -> tuple[str, dict]:
    names = zf.namelist()
    if INDEX not in names:
        raise _refuse(path, f"no {INDEX} index, so it is not an mlrepro bundle or is damaged")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise _refuse(path, f"duplicate member(s) {dupes[:5]}")
    info = zf.getinfo(INDEX)
    if info.file_size > MAX_INDEX_BYTES:
        raise _refuse(path, f"its {INDEX} index is implausibly large")
    _check_ratio(path, info, limits)
    raw = _read_member(zf, path, INDEX, info.file_size)
    fingerprint = hash_bytes(raw)
    if expect is not None and fingerprint != expect:
        raise _refuse(
            path,
            f"its fingerprint is {fingerprint}, not the expected {expect}",
            hint="this is not the bundle you pinned: get the right file, or update the pin",
        )
    from mlrepro.guards import safejson

    try:
        index = safejson.loads(raw, limits.max_depth)
    except safejson.TooDeep as exc:
        raise _refuse(path, f"its {INDEX} index is {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _refuse(path, f"its {INDEX} index is not valid JSON") from None
    members = index.get("members") if isinstance(index, dict) else None
    fmt = index.get("bundle_format") if isinstance(index, dict) else None
    if not isinstance(members, dict) or not isinstance(fmt, int):
        raise _refuse(path, f"its {INDEX} index does not describe an mlrepro bundle")
    if fmt > BUNDLE_FORMAT:
        raise ArtifactError(
            f"bundle {path.name} has format {fmt}, written by mlrepro "
            f"{index.get('mlrepro_version', '?')}; this is mlrepro {__version__}",
            hint="upgrade mlrepro (pip install -U mlrepro) to read this bundle",
        )
    return fingerprint, index


def _check_members(zf: zipfile.ZipFile, path: Path, index: dict) -> dict[str, bytes]:
    listed, present = set(index["members"]), set(zf.namelist()) - {INDEX, SIGNATURES}
    for problem, names in (
        ("member(s) not listed in its index", present - listed),
        ("member(s) listed in its index but missing", listed - present),
        ("unknown member(s)", listed - set(MEMBERS) - set(OPTIONAL)),
        ("required member(s) missing", set(MEMBERS) - listed),
    ):
        if names:
            raise _refuse(path, f"{problem}: {sorted(names)[:5]}")
    out = {}
    for name in [*MEMBERS, *(n for n in OPTIONAL if n in listed)]:
        entry = index["members"][name]
        if not isinstance(entry, dict):
            raise _refuse(path, f"its index entry for {name} is malformed")
        size = zf.getinfo(name).file_size
        if size != entry.get("size"):  # checked before reading: no zip bombs
            raise _refuse(
                path,
                f"member {name} does not match its recorded size ({entry.get('size')} bytes, "
                f"found {size}): it was modified or corrupted",
            )
        data = _read_member(zf, path, name, size)
        actual = hash_bytes(data)
        if actual != entry.get("file_hash"):
            raise _refuse(
                path,
                f"member {name} does not match its recorded hash (expected "
                f"{str(entry.get('file_hash'))[:15]}..., found {actual[:15]}...): it was "
                "modified or corrupted",
            )
        out[name] = data
    return out


def read_verified(
    path: str | Path, expect: str | None = None, limits: Limits | None = None
) -> VerifiedBundle:
    """Open a bundle and check every member's hash; parses nothing but the JSON index.

    Sizes, compression ratios and JSON depth are checked against ``limits`` (default:
    ``Limits.from_env()``) before anything is decompressed or parsed.
    """
    path = Path(path)
    limits = limits or Limits.from_env()
    if not path.is_file():
        raise ArtifactError(
            f"bundle {path} does not exist",
            hint="check the path; build a bundle in the project with 'mlrepro bundle -o FILE'",
        )
    if path.stat().st_size > limits.max_total:
        raise _refuse(
            path,
            f"the file is {path.stat().st_size} bytes, above the limit of {limits.max_total}",
            hint="if the bundle is genuine, raise MLREPRO_BUNDLE_MAX_TOTAL",
        )
    try:
        with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as zf:
            _check_sizes(zf, path, limits)
            fingerprint, index = _read_index(zf, path, expect, limits)
            members = _check_members(zf, path, index)
            _check_yaml_depth(path, members, limits)
            signatures = None
            if SIGNATURES in zf.namelist():
                if zf.getinfo(SIGNATURES).file_size > MAX_SIGNATURES_BYTES:
                    raise _refuse(path, f"its {SIGNATURES} member is implausibly large")
                signatures = zf.read(SIGNATURES)
            raw_index = zf.read(INDEX)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        ValueError,
        OSError,
        NotImplementedError,  # a compression method zipfile does not support
        zlib.error,  # a damaged deflate stream
    ) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _refuse(path, f"not a readable zip archive ({reason[:120]})") from None
    return VerifiedBundle(path, fingerprint, index, members, signatures, raw_index, limits)
