"""The environment record, its place in the lock, ``mlrepro env`` and strict environments."""

from __future__ import annotations

import json
import os
import shutil
import warnings
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from mlrepro.environment import record as env
from mlrepro.errors import EnvironmentMismatch
from mlrepro.project import lockfile
from tests.cli_helpers import run_cli, run_subprocess

STAGES = ["extract", "features", "select", "train", "predict"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The diabetes example, run once (and bundled)."""
    from tests.conftest import EXAMPLE_IGNORE, EXAMPLES_DIR

    root = tmp_path_factory.mktemp("env") / "diabetes"
    shutil.copytree(EXAMPLES_DIR / "diabetes", root, ignore=shutil.ignore_patterns(*EXAMPLE_IGNORE))
    from mlrepro.cli.main import main

    for args in (
        ["run", "-q", "-p", str(root)],
        ["bundle", "-q", "-o", str(root / "m.mlrepro"), "-p", str(root)],
    ):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 0
    return root


@pytest.fixture
def project(recorded: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(recorded, dest)
    return dest


def edit_record(project: Path, change) -> None:  # noqa: ANN001 - a callable taking the record
    path = project / "mlrepro.lock"
    lock = json.loads(path.read_text())
    for record in lock["environments"].values():
        change(record)
    path.write_text(json.dumps(lock, indent=2, sort_keys=True))


def verdicts(report: dict) -> dict[str, str]:
    return {s["stage"]: s["verdict"] for s in report["stages"]}


# ---------------------------------------------------------------------------- the record


def test_record_lists_every_installed_distribution(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("MKL_CBWR", "AUTO")
    record = env.capture()
    installed = {
        env.canonical_name(d.metadata["Name"])
        for d in metadata.distributions()
        if d.metadata["Name"]
    }
    assert installed <= set(record["distributions"])
    assert record["distributions"]["pytest"]["version"] == metadata.version("pytest")
    assert record["packages"]["scikit-learn"] == metadata.version("scikit-learn")
    assert "numpy" in record["distributions"]["scikit-learn"]["requires"]
    assert record["variables"]["OMP_NUM_THREADS"] == "3"
    assert record["variables"]["MKL_CBWR"] == "AUTO"
    assert "HOME" not in record["variables"]
    assert record["python_build"]["compiler"]
    assert record["os"]["system"]
    assert record["cpu"]["count"] == os.cpu_count()
    assert all(isinstance(f, str) for f in record["cpu"]["flags"])
    pools = record["threadpools"]
    assert pools, "numpy's BLAS at least"
    assert all("num_threads" in p and "filepath" not in p for p in pools)
    assert record["modules"]["sklearn"] == ["scikit-learn"]


def test_direct_url_is_recorded_without_credentials(tmp_path, monkeypatch):
    dist = tmp_path / "demo_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n")
    (dist / "direct_url.json").write_text(
        json.dumps(
            {
                "url": "https://user:s3cret@example.com/demo_pkg-1.0-py3-none-any.whl",
                "archive_info": {"hashes": {"sha256": "ab" * 32}},
            }
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = env.distributions()["demo-pkg"]
    assert entry["url"] == "https://example.com/demo_pkg-1.0-py3-none-any.whl"
    assert entry["hash"] == "sha256=" + "ab" * 32


def test_lock_stores_the_record_once_and_stages_refer_to_it(project):
    raw = json.loads((project / "mlrepro.lock").read_text())
    assert raw["fingerprint_format"] == 1 and raw["lock_format"] == 2
    (fp, record), *more = raw["environments"].items()
    assert not more
    assert all(raw["stages"][s]["environment"] == fp for s in STAGES)
    assert lockfile.environment_fingerprint(record) == fp
    lock = lockfile.read(project)
    assert lock["stages"]["train"]["environment"] == record
    assert lock["stages"]["train"]["environment_fingerprint"] == fp


def to_0_1(project: Path) -> None:
    """Rewrite the lock the way mlrepro 0.1 wrote it: a short record copied into each stage."""
    path = project / "mlrepro.lock"
    lock = json.loads(path.read_text())
    (record,) = lock.pop("environments").values()
    old = {k: record[k] for k in ("python", "implementation", "platform", "machine")}
    old["packages"] = {k: v for k, v in record["packages"].items() if k in env.PACKAGES}
    for stage in lock["stages"].values():
        stage["environment"] = old
    lock.pop("fingerprint_format")
    lock["lock_format"] = 1
    path.write_text(json.dumps(lock, indent=2, sort_keys=True))


def test_a_0_1_lock_still_loads_and_verifies(capsys, project):
    before = json.loads((project / "mlrepro.lock").read_text())
    to_0_1(project)
    r = run_cli("verify", "-p", project, "--json")
    assert r.code == 0, r.out + r.err
    report = r.json()
    assert set(verdicts(report).values()) == {"identical"}
    assert report["environment"] == []  # the 11 packages it names are the same
    r = run_cli("run", "-p", project, "--json")  # every stage key is still valid
    assert r.code == 0 and {s["status"] for s in r.json()["stages"]} == {"skipped"}
    after = json.loads((project / "mlrepro.lock").read_text())
    for stage in STAGES:  # the same fingerprints, now in the current format
        assert after["stages"][stage]["outputs"] == before["stages"][stage]["outputs"]
        assert after["stages"][stage]["key"] == before["stages"][stage]["key"]
    assert after.get("fingerprint_format", 1) == 1
    r = run_cli("env", "diff", "-p", project, "--json")
    assert r.code == 0 and r.json()["differences"] == []


def test_an_unknown_fingerprint_format_is_refused_not_judged(capsys, project):
    path = project / "mlrepro.lock"
    lock = json.loads(path.read_text())
    lock["fingerprint_format"] = 7
    path.write_text(json.dumps(lock))
    r = run_cli("verify", "-p", project)
    assert r.code == 4
    assert "records fingerprint format 7" in r.err and "computes fingerprint format 1" in r.err
    assert "hint: verify with the mlrepro version that wrote it" in r.err
    assert "different" not in r.out
    r = run_cli("run", "-p", project, "--json")
    assert r.code == 4 and r.json()["error"] == "artifact"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda lock: lock.update(environments=[1]), "'environments' is not a mapping"),
        (
            lambda lock: lock["stages"]["train"].update(environment="b3:nope"),
            "names environment b3:nope",
        ),
        (
            lambda lock: lock["stages"]["train"].update(environment=5),
            "malformed environment record",
        ),
    ],
)
def test_a_broken_environment_table_is_an_artifact_error(capsys, project, change, message):
    path = project / "mlrepro.lock"
    lock = json.loads(path.read_text())
    change(lock)
    path.write_text(json.dumps(lock))
    r = run_cli("env", "diff", "-p", project)
    assert r.code == 4 and message in r.err and "hint:" in r.err


# ---------------------------------------------------------------------------- env commands


def test_env_show(capsys):
    r = run_cli("env", "show", "--json")
    assert r.code == 0
    assert r.json()["distributions"]["mlrepro"]["version"]
    r = run_cli("env", "show")
    assert r.code == 0 and "distributions:" in r.out and "scikit-learn==" in r.out


def test_scikit_learns_import_defaults_do_not_change_the_record(monkeypatch):
    # sklearn's import sets KMP_DUPLICATE_LIB_OK / KMP_INIT_AT_FORK with setdefault: a record
    # captured before that import must equal one captured after it
    monkeypatch.delenv("KMP_DUPLICATE_LIB_OK", raising=False)
    monkeypatch.delenv("KMP_INIT_AT_FORK", raising=False)
    before = env.numeric_variables()
    monkeypatch.setenv("KMP_DUPLICATE_LIB_OK", "True")
    monkeypatch.setenv("KMP_INIT_AT_FORK", "FALSE")
    after = env.numeric_variables()
    assert before == after and "KMP_DUPLICATE_LIB_OK" not in after
    old = {**env.capture(), "variables": {**after, "KMP_INIT_AT_FORK": "FALSE"}}
    assert not [d for d in env.differences(old, env.capture()) if d["kind"] == "variable"]
    # a value the user chose is recorded, and a change of it is a difference
    monkeypatch.setenv("KMP_INIT_AT_FORK", "TRUE")
    assert env.numeric_variables()["KMP_INIT_AT_FORK"] == "TRUE"
    changed = [d["name"] for d in env.differences(old, env.capture()) if d["kind"] == "variable"]
    assert changed == ["KMP_INIT_AT_FORK"]


def test_env_diff_ranks_the_pipeline_packages_first(capsys, project):
    def elsewhere(record: dict) -> None:
        record["packages"].update({"scikit-learn": "1.0.0", "numpy": "1.0.0", "rich": "0.1"})
        record["distributions"]["scikit-learn"]["version"] = "1.0.0"
        record["variables"]["OMP_NUM_THREADS"] = "64"
        record["cpu"]["flags"] = record["cpu"]["flags"] + ["avx512_imaginary"]

    edit_record(project, elsewhere)
    r = run_cli("env", "diff", "-p", project, "--json")
    assert r.code == 0
    entries = r.json()["differences"]
    names = [e["name"] for e in entries]
    assert names[:2] == ["scikit-learn", "numpy"]
    assert [e["tier"] for e in entries[:2]] == ["pipeline", "dependency"]
    assert names[-1] == "rich" and entries[-1]["matters"] is False
    numerics = {e["name"] for e in entries if e["tier"] == "numerics"}
    assert {"OMP_NUM_THREADS", "cpu flags"} <= numerics
    assert r.json()["matters"] == 2
    r = run_cli("env", "diff", "-p", project)
    assert "! [pipeline] scikit-learn: 1.0.0 -> " in r.out
    assert "cpu instruction sets: lost avx512_imaginary" in r.out


def test_env_check_is_a_deployment_gate(capsys, project):
    r = run_cli("env", "check", "-p", project)
    assert r.code == 0 and "environment check passed" in r.out
    r = run_cli("env", "check", "--bundle", project / "m.mlrepro", "--json")
    assert r.code == 0 and r.json()["ok"] is True

    edit_record(project, lambda rec: rec["packages"].update({"rich": "0.1"}))
    r = run_cli("env", "check", "-p", project)
    assert r.code == 0, "a package the pipeline does not use does not fail the gate"

    edit_record(project, lambda rec: rec["packages"].update({"scipy": "0.1"}))
    r = run_cli("env", "check", "-p", project)
    assert r.code == 1
    assert "1 package(s) that matter differ" in r.out and "scipy: 0.1 -> " in r.out
    r = run_cli("env", "check", "-p", project, "--json")
    assert r.code == 1 and [e["name"] for e in r.json()["matters"]] == ["scipy"]


def test_env_export_pins_the_record(capsys, project, tmp_path):
    import numpy
    import sklearn

    r = run_cli("env", "export", "-p", project)
    assert r.code == 0
    lines = r.out.splitlines()
    assert f"scikit-learn=={sklearn.__version__}" in lines
    assert f"numpy=={numpy.__version__}" in lines
    assert f"pytest=={metadata.version('pytest')}" in lines
    assert lines[0].startswith("# Generated by 'mlrepro env export'")
    out = tmp_path / "req.txt"
    r = run_cli("env", "export", "-p", project, "--only-matters", "-o", out)
    assert r.code == 0
    pinned = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    assert f"scikit-learn=={sklearn.__version__}" in pinned
    assert not any(p.startswith("pytest==") for p in pinned)
    assert any(p.startswith("scipy==") for p in pinned)  # a dependency of scikit-learn


def test_export_of_vcs_and_local_installs():
    from mlrepro.environment.recreate import requirements

    record = {
        "python": "3.11.7",
        "distributions": {
            "a": {"version": "1.0", "url": "https://github.com/o/a", "vcs": "git", "commit": "abc"},
            "b": {"version": "2.0", "url": "file:///src/b", "editable": True},
            "c": {"version": "3.0"},
        },
    }
    req = requirements(record, [])
    assert req.pinned == ["a @ git+https://github.com/o/a@abc", "c==3.0"]
    assert "# not on an index, install it yourself: b==2.0 (editable: file:///src/b)" in req.text


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["env", "diff", "--lock", "a.lock", "--bundle", "b.mlrepro"], 2, "just one of --lock"),
        (["env", "check", "--lock", "nowhere/mlrepro.lock"], 4, "does not exist"),
        (["env", "export", "--bundle", "nowhere.mlrepro"], 4, "nowhere.mlrepro"),
    ],
)
def test_env_usage_errors(capsys, tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    r = run_cli(*args)
    assert r.code == code and message in r.err and "hint:" in r.err


def test_env_in_a_project_without_a_lock(capsys, copy_example):
    r = run_cli("env", "diff", "-p", copy_example("diabetes"), "--json")
    assert r.code == 4 and "no recorded environment" in r.json()["message"]


def test_recreate_refuses_a_folder_in_use(capsys, project, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    r = run_cli("env", "recreate", busy, "-p", project)
    assert r.code == 2 and "already exists and is not empty" in r.err
    assert (busy / "keep.txt").read_text() == "x"


# ---------------------------------------------------------------------------- strict env


def bundle_trained_with(project: Path, tmp_path: Path, **versions: str) -> Path:
    from mlrepro.delivery import bundle as fmt

    with zipfile.ZipFile(project / "m.mlrepro") as zf:
        members = {n: zf.read(n) for n in fmt.MEMBERS}
    meta = json.loads(members[fmt.METADATA])
    meta["environment"]["packages"].update(versions)
    members[fmt.METADATA] = json.dumps(meta).encode()
    path = tmp_path / "elsewhere.mlrepro"
    fmt.write_archive(path, meta["project"], meta["model_fingerprint"], members)
    return path


def test_strict_env_refuses_a_package_that_matters(project, tmp_path):
    from mlrepro.delivery.api import load_bundle

    assert load_bundle(project / "m.mlrepro", strict_env=True).metadata.project
    other = bundle_trained_with(project, tmp_path, **{"rich": "0.1"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_bundle(other, strict_env=True)  # rich does not matter to the model
    other = bundle_trained_with(project, tmp_path, **{"scikit-learn": "0.9.0"})
    with pytest.raises(EnvironmentMismatch) as exc:
        load_bundle(other, strict_env=True)
    assert exc.value.exit_code == 1
    assert "scikit-learn: 0.9.0 -> " in exc.value.message and "refusing" in exc.value.message
    assert "mlrepro env recreate" in exc.value.hint
    with pytest.warns(UserWarning, match="scikit-learn 0.9.0 -> "):
        load_bundle(other)  # without strict_env: a warning, as before


def test_serve_strict_env_refuses_to_start(capsys, project, tmp_path):
    pytest.importorskip("fastapi")
    other = bundle_trained_with(project, tmp_path, **{"numpy": "0.1"})
    r = run_cli("serve", other, "--strict-env", "--port", "0")
    assert r.code == 1
    assert "numpy: 0.1 -> " in r.err and "refusing to load it" in r.err


# ---------------------------------------------------------------------------- verify


def test_verify_names_the_environment_causes_per_stage(capsys, project):
    edit_record(project, lambda rec: rec["packages"].update({"scikit-learn": "1.0.0"}))
    r = run_cli("verify", "-p", project, "--json")
    assert r.code == 0
    stages = {s["stage"]: s for s in r.json()["stages"]}
    assert any(
        c.startswith("scikit-learn: 1.0.0 -> ") for c in stages["train"]["environment_causes"]
    )
    assert stages["extract"]["environment_causes"] == []  # extract uses no scikit-learn
    assert r.json()["warnings"] == []


def test_fitted_state_differences_in_implementation_details_are_equivalent():
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    from mlrepro.verify.compare import Tolerance
    from mlrepro.verify.modeldiff import compare_fitted

    X = np.arange(12, dtype=float).reshape(4, 3)
    a, b = StandardScaler().fit(X), StandardScaler().fit(X)
    b._added_by_a_newer_version = None  # noqa: SLF001 - what a library upgrade does
    b.__dict__.pop("n_samples_seen_")  # a public attribute an older version lacked
    diff = compare_fitted(a, b, Tolerance())
    assert diff.verdict == "equivalent"
    assert "_added_by_a_newer_version: absent -> None" in diff.reasons[0]
    assert "n_samples_seen_: 4 -> absent" in diff.reasons[0]

    b.mean_ = b.mean_ + 1.0  # behaviour: a different model
    diff = compare_fitted(a, b, Tolerance())
    assert diff.verdict == "different"
    assert any("mean_" in r for r in diff.reasons)


def test_library_warnings_are_summarised_once():
    from mlrepro.verify.envcause import library_warnings

    with library_warnings() as caught:
        for est in ("SimpleImputer", "OneHotEncoder", "SimpleImputer"):
            warnings.warn(
                f"Trying to unpickle estimator {est} from version 1.9.1 when using version "
                "1.8.0. This might lead to breaking code or invalid results.",
                UserWarning,
                stacklevel=1,
            )
        warnings.warn("something else", RuntimeWarning, stacklevel=1)
        warnings.warn("something else", RuntimeWarning, stacklevel=1)
    lines = caught.summary()
    assert lines[0].startswith(
        "InconsistentVersionWarning: models pickled with scikit-learn 1.9.1 were loaded with "
        "scikit-learn 1.8.0 (SimpleImputer, OneHotEncoder)"
    )
    assert lines[1] == "RuntimeWarning (2 times): something else"


@pytest.mark.slow
def test_verify_under_other_thread_counts(capsys, project):
    """One thread or all cores, and the model's n_jobs: the same fingerprints (README)."""
    for threads in ("1", str(os.cpu_count() or 2)):
        proc = run_subprocess(
            "verify",
            "--json",
            "-p",
            project,
            env={"OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads},
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert set(verdicts(json.loads(proc.stdout)).values()) == {"identical"}


@pytest.mark.slow
def test_n_jobs_changes_no_fingerprint_of_the_model(capsys, copy_example):
    """A forest fitted with n_jobs=2 is the same model; its predictions are summed in the
    order the threads finish, so they may differ in the last bits: equivalent, never
    different (README, "What mlrepro promises across environments")."""
    project = copy_example("diabetes")
    manifest = project / "mlrepro.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "params: {n_estimators: 200, max_depth: 8}",
            "params: {n_estimators: 200, max_depth: 8, n_jobs: 2}",
        )
    )
    assert "n_jobs: 2" in manifest.read_text()
    assert run_cli("run", "-q", "-p", project).code == 0
    r = run_cli("verify", "-p", project, "--json")
    assert r.code == 0, r.out
    report = r.json()
    assert set(verdicts(report).values()) <= {"identical", "equivalent"}
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["train"]["outputs"]["pipeline"]["verdict"] == "identical"
    for stage in ("extract", "features", "select"):
        assert stages[stage]["verdict"] == "identical"
