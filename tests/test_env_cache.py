"""The environment record's cache (.mlrepro/envcache.json) and the stage-scoped preflight.

The cache must give the record a fresh capture gives, and must miss whenever what it depends
on changes: a distribution appears on sys.path, a thread-count variable changes, the file is
malformed or was written for another installation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_helpers import REPO_ROOT

from mlrepro.environment import record as env

CACHE = "envcache.json"


def _poison(cache_file: Path) -> None:
    """Mark the cached half so that a hit is visible in the next record."""
    data = json.loads(cache_file.read_text())
    data["record"]["packages"]["zz-marker-from-cache"] = "1"
    cache_file.write_text(json.dumps(data))


@pytest.fixture
def warm(tmp_path: Path) -> Path:
    store = tmp_path / ".mlrepro"
    store.mkdir()
    env.capture(cache_dir=store)
    assert (store / CACHE).is_file(), "site-packages is older than 2 s: the entry is stored"
    return store


def test_cached_record_equals_a_fresh_capture(warm: Path) -> None:
    fresh = env.capture()
    cached = env.capture(cache_dir=warm)
    assert cached == fresh
    _poison(warm / CACHE)
    assert "zz-marker-from-cache" in env.capture(cache_dir=warm)["packages"]  # a hit


def test_a_new_distribution_on_sys_path_misses(warm: Path, tmp_path, monkeypatch) -> None:
    _poison(warm / CACHE)
    site = tmp_path / "site"
    meta = site / "zz_fresh_dist-1.2.3.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: zz-fresh-dist\nVersion: 1.2.3\n")
    monkeypatch.syspath_prepend(str(site))
    rec = env.capture(cache_dir=warm)
    assert rec["packages"].get("zz-fresh-dist") == "1.2.3"
    assert "zz-marker-from-cache" not in rec["packages"]


def test_a_thread_variable_misses(warm: Path, monkeypatch) -> None:
    _poison(warm / CACHE)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rec = env.capture(cache_dir=warm)
    assert "zz-marker-from-cache" not in rec["packages"]
    assert rec["variables"]["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[" * 5000,
        json.dumps({"format": 1, "key": "0" * 64, "record": {}}).encode(),  # another key
        b"",
    ],
    ids=["garbage", "deep", "other-installation", "empty"],
)
def test_a_malformed_or_foreign_cache_is_ignored(tmp_path, content) -> None:
    store = tmp_path / ".mlrepro"
    store.mkdir()
    (store / CACHE).write_bytes(content)
    assert env.capture(cache_dir=store) == env.capture()


def test_a_right_key_with_a_wrong_shape_is_ignored(warm: Path) -> None:
    data = json.loads((warm / CACHE).read_text())
    data["record"]["threadpools"] = {"not": "a list"}
    (warm / CACHE).write_text(json.dumps(data))
    assert env.capture(cache_dir=warm) == env.capture()


def test_a_read_only_store_still_captures(tmp_path) -> None:
    missing = tmp_path / "no-such-store"
    assert env.capture(cache_dir=missing) == env.capture()
    assert not missing.exists()


PROBE = (
    "import sys\nfrom mlrepro.cli.main import main\n"
    "try:\n    main(sys.argv[1:])\n"
    "except SystemExit as e:\n    print('EXIT', e.code)\n"
    "print('SKLEARN', 'sklearn' in sys.modules)"
)


def _cli(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        timeout=300,
    )
    return done.stdout + done.stderr


def test_extract_alone_resolves_no_model_class(copy_example) -> None:
    """`mlrepro extract` checks only its own stage: a misspelt estimator does not stop it
    (and scikit-learn is not imported once the environment cache is warm); `run` still
    refuses before its first stage, with the lock as it was."""
    project = copy_example("diabetes")
    manifest = yaml.safe_load((project / "mlrepro.yaml").read_text())
    manifest["model"]["estimator"] = "sklearn.ensemble.RandomForrestRegressor"
    (project / "mlrepro.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))

    out = _cli("extract", "-q", cwd=project)
    assert "EXIT 0" in out, out
    lock = (project / "mlrepro.lock").read_bytes()
    assert set(json.loads(lock)["stages"]) == {"extract"}
    cache = project / ".mlrepro" / CACHE
    assert cache.is_file()
    out = _cli("extract", "--force", "-q", cwd=project)
    assert "EXIT 0" in out and "SKLEARN False" in out, out

    out = _cli("run", "--force", "-q", cwd=project)
    assert "EXIT 2" in out and "RandomForrestRegressor" in out, out
    assert json.loads((project / "mlrepro.lock").read_bytes())["stages"].keys() == {"extract"}
