"""Attack 1: a lock whose artifact paths leave the project (absolute, ``../``, symlinks).

Every command that reads a lock refuses it with exit 4 naming the record, before anything
is read, linked or deleted: the decoy stays intact and nothing appears outside the project.
"""

from __future__ import annotations

import os

import pytest

from mlrepro.errors import ArtifactError
from mlrepro.project import lockfile

COMMANDS = [
    ("status",),
    ("run",),
    ("run", "--force"),
    ("features",),
    ("verify",),
    ("verify", "--offline"),
    ("verify", "--stage", "train"),
    ("verify", "--stage", "predict"),
    ("bundle", "-o", "x.mlrepro"),
    ("predict",),
]


def _attacks(h):  # noqa: ANN001, ANN202 - (label, path written into the lock)
    rel = os.path.relpath(h.decoy, h.root)
    return {"absolute": str(h.decoy), "dotdot": rel, "dotdot-in-store": f".mlrepro/objects/{rel}"}


@pytest.mark.parametrize("attack", ["absolute", "dotdot", "dotdot-in-store"])
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_escaping_lock_path_is_refused(hostile, cli, attack, args) -> None:  # noqa: ANN001
    hostile.point("extract", "schema", _attacks(hostile)[attack])
    before = hostile.outside_entries()
    res = cli(*args, "-p", hostile.root)
    assert res.code == 4, (res.out, res.err)
    assert "extract.schema" in res.err
    assert "refusing to read, link or delete it" in res.err
    assert "hint:" in res.err
    assert hostile.decoy_intact()
    assert hostile.outside_entries() == before


@pytest.mark.parametrize("args", [("verify", "--offline"), ("status",), ("run", "--force")])
def test_symlink_out_of_the_store_is_refused(hostile, cli, args) -> None:  # noqa: ANN001
    lock = hostile.lock()
    rec = lock["stages"]["extract"]["outputs"]["schema"]
    link = hostile.root / ".mlrepro" / "objects" / "zz" / "decoy.yaml"
    link.parent.mkdir(parents=True)
    link.symlink_to(hostile.decoy)
    hostile.point("extract", "schema", rec["path"].rsplit("/", 2)[0] + "/zz/decoy.yaml")
    res = cli(*args, "-p", hostile.root)
    assert res.code == 4, res.err
    assert "extract.schema" in res.err and "symlink" in res.err
    assert hostile.decoy_intact()


def test_symlinked_store_folder_is_refused(hostile, cli, tmp_path) -> None:  # noqa: ANN001
    """``.mlrepro/objects`` pointing elsewhere: run would prune, verify would link there."""
    elsewhere = tmp_path / "elsewhere"
    (hostile.root / ".mlrepro" / "objects").rename(elsewhere)
    (hostile.root / ".mlrepro" / "objects").symlink_to(elsewhere)
    victim = elsewhere / "precious.txt"
    victim.write_text("keep me")
    for args in (("run",), ("verify", "--offline"), ("status",)):
        res = cli(*args, "-p", hostile.root)
        assert res.code == 4, (args, res.err)
        assert ".mlrepro/objects is a symbolic link" in res.err
    assert victim.read_text() == "keep me"


def test_predictions_record_inside_the_store_is_refused(hostile, cli) -> None:  # noqa: ANN001
    lock = hostile.lock()
    snapshot = lock["stages"]["extract"]["outputs"]["snapshot"]
    hostile.point("predict", "predictions", snapshot["path"], hostile.root / snapshot["path"])
    res = cli("run", "-p", hostile.root)
    assert res.code == 4
    assert "predict.predictions" in res.err and "inside .mlrepro/" in res.err
    assert (hostile.root / snapshot["path"]).is_file()


@pytest.mark.parametrize(
    "bad",
    [None, 7, "", "a\\b", ".mlrepro/objects/./x", ".mlrepro/objects/a\x1b]0;x\x07", "C:/x"],
)
def test_malformed_paths_are_artifact_errors(hostile, bad) -> None:  # noqa: ANN001
    lock = hostile.lock()
    lock["stages"]["train"]["outputs"]["pipeline"]["path"] = bad
    hostile.write_lock(lock)
    with pytest.raises(ArtifactError, match="train.pipeline"):
        lockfile.read(hostile.root)


def test_output_record_of_the_wrong_shape(hostile) -> None:  # noqa: ANN001
    lock = hostile.lock()
    lock["stages"]["features"]["outputs"]["matrix"] = ["not", "a", "record"]
    hostile.write_lock(lock)
    with pytest.raises(ArtifactError, match="features.matrix"):
        lockfile.read(hostile.root)
    lock["stages"]["features"] = "nope"
    hostile.write_lock(lock)
    with pytest.raises(ArtifactError, match="record features"):
        lockfile.read(hostile.root)


def test_the_issue_repro_verify_offline_keeps_the_decoy(hostile, cli) -> None:  # noqa: ANN001
    """The issue's repro: extract.schema -> absolute decoy with its blake3, verify --offline."""
    hostile.point("extract", "schema", str(hostile.decoy))
    res = cli("verify", "--offline", "--json", "-p", hostile.root)
    assert res.code == 4
    assert res.json()["error"] == "artifact"
    assert hostile.decoy_intact()


@pytest.mark.parametrize("key", ["inputs", "params", "details", "environment"])
def test_stage_record_fields_of_the_wrong_type(hostile, cli, key) -> None:  # noqa: ANN001
    lock = hostile.lock()
    lock["stages"]["train"][key] = None
    hostile.write_lock(lock)
    for args in (("status",), ("verify", "--offline")):
        res = cli(*args, "-p", hostile.root)
        assert res.code == 4, res.err
        assert "mlrepro.lock record train is not a mapping" in res.err
