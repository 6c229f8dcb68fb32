"""The no-op paths (status, an up-to-date run, --version) stay light and stay correct.

Regression guards, not timings: a fresh interpreter runs the command under
``python -X importtime`` and the test reads which modules it imported. The fast path
(``mlrepro/cli/quick.py``) must print what the typer app prints; ``-pDIR`` (click's
attached short-option value) is outside the fast grammar, so it goes through typer and
serves as the reference. The stat cache must still see a changed artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from cli_helpers import REPO_ROOT, run_cli, run_subprocess

from mlrepro.project.statcache import CACHE_NAME, SETTLE_NS

HEAVY = ("pandas", "sklearn", "pyarrow", "sqlalchemy", "numpy", "typer", "pydantic")


def imported(*args: str | Path, cwd: Path) -> tuple[int, str, set[str]]:
    proc = run_subprocess(*args, cwd=cwd, python_args=("-X", "importtime"))
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return proc.returncode, proc.stdout, names


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("noop") / "diabetes"
    shutil.copytree(
        REPO_ROOT / "examples" / "diabetes",
        target,
        ignore=shutil.ignore_patterns(".mlrepro", "mlrepro.lock", "predictions*"),
    )
    assert run_cli("run", "-q", "-p", target).code == 0
    return target


@pytest.mark.parametrize(
    "args",
    [("status",), ("status", "--json"), ("run",), ("run", "--json"), ("run", "-q"), ("train",)],
)
def test_noop_commands_import_no_heavy_module(project: Path, args: tuple[str, ...]) -> None:
    code, out, names = imported(*args, "-p", project, cwd=project)
    assert code == 0, out
    assert not names & set(HEAVY), sorted(names & set(HEAVY))
    if "--json" in args or "-q" in args:
        assert "rich" not in names  # nothing rich-formatted is printed


def test_version_imports_nothing_but_the_package(tmp_path: Path) -> None:
    code, out, names = imported("--version", cwd=tmp_path)
    assert code == 0 and out.startswith("mlrepro ")
    assert not names & {*HEAVY, "rich", "yaml"}


def test_stale_run_leaves_the_fast_path(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "p"
    shutil.copytree(project, copy)
    (copy / "mlrepro.yaml").write_text((copy / "mlrepro.yaml").read_text().replace("k: 6", "k: 5"))
    code, out, names = imported("run", "-q", "-p", copy, cwd=copy)
    assert code == 0, out
    assert "sklearn" in names  # it really ran
    assert json.loads(run_cli("status", "--json", "-p", copy).out)["stages"][2] == {
        "stage": "select",
        "state": "up to date",
        "reason": "",
    }


@pytest.mark.parametrize("args", [("status",), ("status", "--json"), ("run",), ("run", "--json")])
def test_fast_path_prints_what_typer_prints(project: Path, args: tuple[str, ...]) -> None:
    fast = run_subprocess(*args, "-p", project, cwd=project)
    typer = run_subprocess(*args, f"-p{project}", cwd=project)
    assert fast.returncode == typer.returncode == 0
    if "--json" in args and args[0] == "run":  # durations differ from run to run
        strip = lambda s: [{**st, "duration_s": 0} for st in json.loads(s)["stages"]]  # noqa: E731
        assert strip(fast.stdout) == strip(typer.stdout)
    else:
        assert fast.stdout == typer.stdout
    assert fast.stderr == typer.stderr


def test_errors_keep_their_exit_code_and_json(tmp_path: Path) -> None:
    fast = run_subprocess("status", "--json", "-p", tmp_path / "nowhere", cwd=tmp_path)
    typer = run_subprocess("status", "--json", f"-p{tmp_path / 'nowhere'}", cwd=tmp_path)
    assert fast.returncode == typer.returncode != 0
    assert json.loads(fast.stdout) == json.loads(typer.stdout)
    assert fast.stderr == typer.stderr


def _status(project: Path) -> list[dict[str, str]]:
    r = run_cli("status", "--json", "-p", project)
    assert r.code == 0, r.err
    return json.loads(r.out)["stages"]


def test_stat_cache_still_sees_rewritten_bytes_with_the_same_size_and_mtime(
    project: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "p"
    shutil.copytree(project, copy)
    time.sleep(SETTLE_NS / 1e9 + 0.2)  # the copy's timestamps must settle to be cached
    assert {s["state"] for s in _status(copy)} == {"up to date"}
    cache = json.loads((copy / ".mlrepro" / CACHE_NAME).read_text())
    lock = json.loads((copy / "mlrepro.lock").read_text())
    schema = lock["stages"]["extract"]["outputs"]["schema"]["path"]
    assert schema in cache["files"]

    path = copy / schema
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[-2] = ord("x") if data[-2] != ord("x") else ord("y")
    path.write_bytes(bytes(data))  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime
    assert path.stat().st_size == before.st_size
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    states = _status(copy)
    assert states[0]["state"] == "stale"
    assert "modified: schema" in states[0]["reason"]


def test_a_forged_or_broken_cache_is_harmless(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "p"
    shutil.copytree(project, copy)
    cache = copy / ".mlrepro" / CACHE_NAME
    cache.write_text("[" * 100_000)
    assert {s["state"] for s in _status(copy)} == {"up to date"}
    lock = json.loads((copy / "mlrepro.lock").read_text())
    rec = lock["stages"]["train"]["outputs"]["pipeline"]
    (copy / rec["path"]).write_bytes(b"tampered")
    # a cache entry naming the recorded hash for a different signature is not trusted
    st = (copy / rec["path"]).stat()
    forged = [st.st_dev, st.st_ino + 1, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    cache.write_text(json.dumps({"format": 1, "files": {rec["path"]: [*forged, rec["file_hash"]]}}))
    assert _status(copy)[3]["state"] == "stale"
    # and loading never trusts the cache: the bytes are hashed before unpickling
    r = run_cli(
        "predict", "-p", copy, "-i", copy / "data" / "new_visits.csv", "-o", tmp_path / "o.csv"
    )
    assert r.code == 4, r.err
