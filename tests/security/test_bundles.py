"""Attack 4 and 5: zip bombs, deeply nested JSON and terminal escapes in a bundle.

Each hostile bundle has a *consistent* index (sizes and hashes match its members), so only
the hard limits stop it: sizes, ratio and JSON depth are checked against the zip directory
before anything is inflated or parsed (exit 4), and text printed from a bundle has its
control sequences stripped.
"""

from __future__ import annotations

import json
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import blake3
import pytest

from mlrepro.delivery import bundle as fmt
from mlrepro.errors import ArtifactError

OSC = "\x1b]0;pwned\x07"
CSI = "\x1b[2J\x1b[31m"


@pytest.fixture(scope="session")
def built_bundle(trained_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cli_helpers import run_subprocess

    out = tmp_path_factory.mktemp("security-bundle") / "model.mlrepro"
    proc = run_subprocess("bundle", "-q", "-o", str(out), cwd=trained_project)
    assert proc.returncode == 0, proc.stderr
    return out


def members_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in fmt.MEMBERS}


def rewrite(src: Path, dest: Path, **changes: bytes) -> Path:
    """A bundle with some members replaced, and an index that matches them."""
    members = members_of(src)
    members.update({getattr(fmt, k): v for k, v in changes.items()})
    index = json.loads(zipfile.ZipFile(src).read(fmt.INDEX))
    fmt.write_archive(dest, index["project"], index["model_fingerprint"], members)
    return dest


# ---------------------------------------------------------------------- raw zip writing


def _raw_zip(path: Path, entries: list[tuple[str, int, int, bytes, int]]) -> None:
    """Write a zip from (name, method, crc, compressed bytes, size): pre-deflated data."""
    out, central = bytearray(), bytearray()
    for name, method, crc, data, size in entries:
        raw = name.encode()
        offset = len(out)
        out += struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 33, crc, len(data), size,
            len(raw), 0,
        )  # fmt: skip
        out += raw + data
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 33, crc, len(data),
            size, len(raw), 0, 0, 0, 0, 0o644 << 16, offset,
        )  # fmt: skip
        central += raw
    eocd = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(out), 0
    )
    path.write_bytes(bytes(out + central + eocd))


def _deflated(data: bytes) -> tuple[int, bytes]:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return zlib.crc32(data), c.compress(data) + c.flush()


def _zeros_bomb(gib: int) -> tuple[int, bytes, int, str]:
    """(crc, deflate stream, size, blake3) of ``gib`` GiB of zeros, built in ~1 second."""
    chunk = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    n = gib << 10
    crc, digest = 0, blake3.blake3(max_threads=blake3.blake3.AUTO)
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
        digest.update(chunk)
    return crc, block * n + c.flush(), n << 20, "b3:" + digest.hexdigest()


def bomb_bundle(src: Path, dest: Path, gib: int = 3) -> Path:
    """A bundle whose pipeline member is ``gib`` GiB of zeros, with a consistent index."""
    members = members_of(src)
    crc, stream, size, file_hash = _zeros_bomb(gib)
    index = json.loads(zipfile.ZipFile(src).read(fmt.INDEX))
    index["members"][fmt.PIPELINE] = {"size": size, "file_hash": file_hash}
    raw_index = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
    entries = [(fmt.INDEX, 8, *_deflated(raw_index), len(raw_index))]
    for name in fmt.MEMBERS:
        if name == fmt.PIPELINE:
            entries.append((name, 8, crc, stream, size))
        else:
            entries.append((name, 8, *_deflated(members[name]), len(members[name])))
    _raw_zip(dest, entries)
    return dest


# ---------------------------------------------------------------------- tests


@pytest.mark.slow
def test_zip_bomb_with_consistent_index_is_refused_unread(built_bundle, tmp_path, cli) -> None:  # noqa: ANN001
    """The issue's repro: ~3 MB on disk, 3 GiB declared (and real), index consistent."""
    bomb = bomb_bundle(built_bundle, tmp_path / "bomb.mlrepro")
    assert bomb.stat().st_size < 8 << 20
    with zipfile.ZipFile(bomb) as zf:  # the index really is consistent with the member
        assert zf.getinfo(fmt.PIPELINE).file_size == 3 << 30
    tracemalloc.start()
    try:
        with pytest.raises(ArtifactError, match="above the limit"):
            fmt.read_verified(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20  # the file is read (~3 MB), nothing is inflated
    for args in (("inspect", bomb), ("predict", "-b", bomb, "-i", "x.csv", "-o", "y.csv")):
        res = cli(*args)
        assert res.code == 4, res.err
        assert "pipeline.joblib" in res.err and "above the limit" in res.err


def test_compression_ratio_is_capped(built_bundle, tmp_path, cli) -> None:  # noqa: ANN001
    zeros = bytes(32 << 20)  # 32 MiB of zeros deflate ~1000x
    bomb = rewrite(built_bundle, tmp_path / "ratio.mlrepro", CARD=zeros)
    res = cli("inspect", bomb)
    assert res.code == 4
    assert "MODEL_CARD.md would inflate" in res.err and "zip bomb" in res.err
    assert "MLREPRO_BUNDLE_MAX_RATIO" in res.err


def test_limits_are_overridable(built_bundle, tmp_path, cli, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MLREPRO_BUNDLE_MAX_MEMBER", "1000")
    res = cli("inspect", built_bundle)
    assert res.code == 4 and "above the limit of 1000 bytes" in res.err
    monkeypatch.setenv("MLREPRO_BUNDLE_MAX_MEMBER", "lots")
    res = cli("inspect", built_bundle)
    assert res.code == 2 and "MLREPRO_BUNDLE_MAX_MEMBER" in res.err
    monkeypatch.delenv("MLREPRO_BUNDLE_MAX_MEMBER")
    zeros = bytes(32 << 20)
    big = rewrite(built_bundle, tmp_path / "ratio.mlrepro", CARD=zeros)
    limits = fmt.Limits(max_ratio=1e6)
    assert fmt.read_verified(big, limits=limits).members[fmt.CARD] == zeros


def test_nested_index_is_refused(built_bundle, tmp_path, cli) -> None:  # noqa: ANN001
    nested = b"[" * 200_000 + b"]" * 200_000
    path = tmp_path / "nested.mlrepro"
    members = members_of(built_bundle)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(fmt.INDEX, nested)
        for name, data in members.items():
            zf.writestr(name, data)
    res = cli("inspect", path)
    assert res.code == 4, res.err
    assert "bundle.json index is nested more than 64 levels deep" in res.err


@pytest.mark.parametrize("member", ["METADATA", "LOCK"])
def test_nested_json_member_is_refused(built_bundle, tmp_path, cli, member) -> None:  # noqa: ANN001
    nested = b"[" * 200_000 + b"]" * 200_000
    path = rewrite(built_bundle, tmp_path / "nested.mlrepro", **{member: nested})
    if member == "METADATA":
        res = cli("inspect", path)
        assert res.code == 4, res.err
        assert "metadata.json is nested more than 64 levels deep" in res.err
    with pytest.raises(ArtifactError, match="nested more than 64"):
        fmt.read_verified(path).json(getattr(fmt, member))


def test_nested_lock_is_an_artifact_error(hostile, cli) -> None:  # noqa: ANN001
    hostile.lock_path.write_text("[" * 200_000 + "]" * 200_000)
    res = cli("status", "-p", hostile.root)
    assert res.code == 4, res.err
    assert "mlrepro.lock is not valid JSON" in res.err


def test_inspect_says_an_unpinned_bundle_is_unproven(built_bundle, cli) -> None:  # noqa: ANN001
    res = cli("inspect", built_bundle)
    assert res.code == 0
    unproven = "NOT PROVEN: checked only against its own index (not pinned, no trusted signature)"
    assert unproven in res.out
    fp = cli("inspect", "--json", built_bundle).json()
    assert fp["pinned"] is False and "NOT PROVEN" in fp["origin"]
    res = cli("inspect", "--expect", fp["fingerprint"], built_bundle)
    assert "pinned: its fingerprint is the one you passed with --expect" in res.out


def test_terminal_escapes_in_the_card_never_reach_the_terminal(built_bundle, tmp_path, cli) -> None:  # noqa: ANN001
    card = members_of(built_bundle)[fmt.CARD].decode()
    evil = f"# Model {OSC}card\n{CSI}hidden\x9b31m\u202eevil\r\n" + card
    path = rewrite(built_bundle, tmp_path / "osc.mlrepro", CARD=evil.encode())
    res = cli("inspect", path)
    assert res.code == 0, res.err
    for bad in ("\x1b", "\x07", "\x9b", "\u202e", "\r"):
        assert bad not in res.out
    assert "# Model card" in res.out and "hidden" in res.out
    as_json = cli("inspect", "--json", path).out
    assert "\x1b" not in as_json and "\\u001b" in as_json  # JSON keeps it, escaped


def test_nested_yaml_schema_is_refused(built_bundle, tmp_path, cli) -> None:  # noqa: ANN001
    nested = b"columns: " + b"[" * 100_000 + b"]" * 100_000
    path = rewrite(built_bundle, tmp_path / "yaml.mlrepro", SCHEMA=nested)
    res = cli("predict", "-b", path, "-i", "x.csv", "-o", tmp_path / "y.csv")
    assert res.code == 4, res.err
    assert "schema.yaml is nested more than 64 levels deep" in res.err


def test_nested_schema_artifact_is_refused(hostile, cli) -> None:  # noqa: ANN001
    lock = hostile.lock()
    schema = hostile.root / lock["stages"]["extract"]["outputs"]["schema"]["path"]
    schema.write_bytes(b"[" * 100_000)
    hostile.point(
        "extract", "schema", lock["stages"]["extract"]["outputs"]["schema"]["path"], schema
    )
    res = cli(
        "predict", "-p", hostile.root, "-i", hostile.root / "data/new_visits.csv", "-o", "o.csv"
    )
    assert res.code == 4, res.err
    assert "nested more than 64 levels" in res.err
