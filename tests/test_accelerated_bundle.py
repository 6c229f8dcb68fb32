"""The accelerated runtime end to end: bundle --accelerate, inspect, load_bundle, predict,
serve, the manifest option and verify. (The compiler itself: tests/accelerate/.)"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cli_helpers import run_cli, run_subprocess
from delivery_util import EXAMPLES, train_project
from program_archive import npy, program_bytes, program_members

from mlrepro.delivery import bundle as fmt
from mlrepro.delivery.api import load_bundle
from mlrepro.errors import ArtifactError

if os.environ.get("CI", "").strip().lower() not in {"true", "1", "yes"}:
    pytest.importorskip("numba", reason="the 'accelerate' extra is not installed")


def _accelerated(name: str, base: Path) -> tuple[Path, Path, dict]:
    project = train_project(name, base / name)
    out = base / f"{name}-fast.mlrepro"
    result = run_cli("bundle", "-p", project, "-o", out, "--accelerate", "--json")
    assert result.code == 0, result.err
    return project, out, result.json()


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    return _accelerated("diabetes", tmp_path_factory.mktemp("accel"))


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    return _accelerated("breast_cancer", tmp_path_factory.mktemp("accel"))


def _inputs(name: str) -> pd.DataFrame:
    csv = {"diabetes": "new_visits.csv", "breast_cancer": "new_biopsies.csv"}[name]
    return pd.read_csv(EXAMPLES / name / "data" / csv)


@pytest.mark.parametrize("example", ["diabetes", "cancer"])
def test_bundle_accelerate_records_the_equivalence_figures(example, request):
    _, path, info = request.getfixturevalue(example)
    record = info["acceleration"]
    assert record["status"] == "accepted", record
    eq = record["equivalence"]
    assert eq["ok"] is True and eq["rows"] > 100
    assert eq["max_abs"] <= 1e-6
    with zipfile.ZipFile(path) as zf:
        index = json.loads(zf.read(fmt.INDEX))
        assert {fmt.ACCELERATION, fmt.PROGRAM} <= set(index["members"])
        assert index["bundle_format"] == 2
        assert json.loads(zf.read(fmt.ACCELERATION)) == record
        assert b"joblib" not in zf.read(fmt.PROGRAM)[:64]  # not a pickle


def test_inspect_shows_the_acceleration(diabetes):
    _, path, info = diabetes
    result = run_cli("inspect", path, "--json")
    assert result.code == 0
    assert result.json()["acceleration"] == info["acceleration"]
    text = run_cli("inspect", path)
    assert "accelerated: yes" in text.out
    assert f"equivalent on {info['acceleration']['equivalence']['rows']} rows" in text.out


@pytest.mark.parametrize("example", ["diabetes", "cancer"])
@pytest.mark.parametrize("warm_up", [True, False], ids=["warm", "lazy"])
def test_load_bundle_scores_with_the_program_and_matches_sklearn(example, warm_up, request):
    name = {"diabetes": "diabetes", "cancer": "breast_cancer"}[example]
    _, path, _ = request.getfixturevalue(example)
    fast = load_bundle(path, warm_up=warm_up)  # lazy: each kernel compiles on first use
    slow = load_bundle(path, runtime="sklearn")
    assert (fast.runtime, slow.runtime) == ("accelerated", "sklearn")
    assert "runtime=accelerated" in repr(fast)
    frame = _inputs(name)
    a, b = fast.predict(frame), slow.predict(frame)
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        if a[col].dtype.kind == "f":
            np.testing.assert_allclose(a[col], b[col], rtol=1e-9, atol=1e-12)
        else:
            assert a[col].tolist() == b[col].tolist()
    assert fast.pipeline.rows["accelerated"] > 0
    # one record (the serve/stream shape) scores through the program too
    one = frame.iloc[[3]].reset_index(drop=True)
    assert fast.predict(one)["prediction"].tolist() == pytest.approx(
        slow.predict(one)["prediction"].tolist(), rel=1e-9
    )


def test_predict_cli_runtime_choice(diabetes, tmp_path):
    _, path, _ = diabetes
    csv = EXAMPLES / "diabetes" / "data" / "new_visits.csv"
    outs = {}
    for runtime in ("auto", "sklearn", "accelerated"):
        out = tmp_path / f"{runtime}.csv"
        args = ["predict", "--bundle", path, "-i", csv, "-o", out, "--json"]
        result = run_cli(*args, "--runtime", runtime)
        assert result.code == 0, result.err
        summary = result.json()
        assert summary["runtime"] == ("sklearn" if runtime == "sklearn" else "accelerated")
        outs[runtime] = pd.read_csv(out)
    np.testing.assert_allclose(outs["auto"]["prediction"], outs["sklearn"]["prediction"], 1e-9)
    bad = run_cli("predict", "--bundle", path, "-i", csv, "-o", tmp_path / "x", "--runtime", "x")
    assert bad.code == 2 and "unknown runtime" in bad.err


def test_runtime_needs_a_bundle(diabetes, tmp_path):
    project, _, _ = diabetes
    csv = EXAMPLES / "diabetes" / "data" / "new_visits.csv"
    result = run_cli(
        "predict", "-p", project, "-i", csv, "-o", tmp_path / "p.csv", "--runtime", "sklearn"
    )
    assert result.code == 2 and "--runtime needs --bundle" in result.err


def test_a_bundle_without_program_needs_runtime_auto(tmp_path):
    project = train_project("diabetes", tmp_path / "plain")
    path = tmp_path / "plain.mlrepro"
    assert run_cli("bundle", "-p", project, "-o", path).code == 0
    assert load_bundle(path).runtime == "sklearn"
    with pytest.raises(ArtifactError, match="has no accelerated program"):
        load_bundle(path, runtime="accelerated")
    with zipfile.ZipFile(path) as zf:
        assert json.loads(zf.read(fmt.INDEX))["bundle_format"] == 1


def test_a_model_the_runtime_cannot_represent_is_bundled_without_program(tmp_path):
    project = tmp_path / "knn"
    train_project("diabetes", project)
    manifest = project / "mlrepro.yaml"
    spec = yaml.safe_load(manifest.read_text())
    spec["model"] = {"estimator": "sklearn.neighbors.KNeighborsRegressor", "params": {}}
    manifest.write_text(yaml.safe_dump(spec))
    assert run_cli("run", "-p", project, "-q").code == 0
    path = tmp_path / "knn.mlrepro"
    result = run_cli("bundle", "-p", project, "-o", path, "--accelerate")
    assert result.code == 0, result.err
    assert "accelerated        no: cannot be compiled" in result.out
    assert "KNeighborsRegressor" in result.out
    bundle = load_bundle(path)
    assert bundle.runtime == "sklearn"
    assert bundle.acceleration["status"] == "refused"
    with pytest.raises(ArtifactError, match="no accelerated program: cannot be compiled"):
        load_bundle(path, runtime="accelerated")


def _replace_member(src: Path, dest: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if n != fmt.INDEX}
    members[name] = data
    index = json.loads(zipfile.ZipFile(src).read(fmt.INDEX))
    fmt.write_archive(dest, index["project"], index["model_fingerprint"], members)


def test_tampered_or_malformed_programs_are_refused(diabetes, tmp_path):
    _, path, _ = diabetes
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    flipped = bytearray(members[fmt.PROGRAM])
    flipped[len(flipped) // 2] ^= 0xFF
    tampered = tmp_path / "tampered.mlrepro"
    with zipfile.ZipFile(tampered, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, bytes(flipped) if name == fmt.PROGRAM else data)
    result = run_cli("predict", "--bundle", tampered, "-i", "x.csv", "-o", tmp_path / "o.csv")
    assert result.code == 4 and "does not match its recorded hash" in result.err
    # hash-valid (the index was rewritten to match) but not a program: refused, exit 4
    garbage = tmp_path / "garbage.mlrepro"
    _replace_member(path, garbage, fmt.PROGRAM, b"PK\x03\x04 not a program")
    with pytest.raises(ArtifactError, match="is not a usable program"):
        load_bundle(garbage)
    # ... also with runtime sklearn? No: the program is not read at all then.
    assert load_bundle(garbage, runtime="sklearn").runtime == "sklearn"
    record = tmp_path / "record.mlrepro"
    _replace_member(path, record, fmt.ACCELERATION, b'{"status": "maybe"}')
    with pytest.raises(ArtifactError, match="is not an acceleration record"):
        load_bundle(record)


def _rewrite(src: Path, dest: Path, change) -> None:
    """A copy of bundle ``src`` whose members ``change`` edits, with a matching index."""
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if n != fmt.INDEX}
        index = json.loads(zf.read(fmt.INDEX))
    change(members)
    fmt.write_archive(dest, index["project"], index["model_fingerprint"], members)


def _edit_program(edit):
    def change(members: dict[str, bytes]) -> None:
        program = program_members(members[fmt.PROGRAM])
        edit(program)
        members[fmt.PROGRAM] = program_bytes(program)

    return change


def _array(program: dict[str, bytes], name: str) -> np.ndarray:
    return np.load(io.BytesIO(program[f"{name}.npy"]), allow_pickle=False)


def test_programs_that_would_exhaust_memory_are_refused_before_inflating(
    diabetes, tmp_path, monkeypatch
):
    _, path, _ = diabetes
    # the program's own members get the bundle's caps: a real program inflates 3-6x
    monkeypatch.setenv("MLREPRO_BUNDLE_MAX_RATIO", "50")
    inputs = tmp_path / "in.csv"
    _inputs("diabetes").head(3).to_csv(inputs, index=False)

    def huge_shape(program: dict[str, bytes]) -> None:  # a header declaring 8 TB, tiny data
        data = program["threshold.npy"]
        start = data.index(b"'shape': (") + len(b"'shape': (")
        end = data.index(b")", start)
        program["threshold.npy"] = data[:start] + b"1000000000000," + data[end:]

    def bomb(program: dict[str, bytes]) -> None:  # 32 MB of zeros, a few kB deflated
        program["threshold.npy"] = npy(np.zeros(4_000_000))

    for name, edit, says in [
        ("shape", huge_shape, "does not match the member's size"),
        ("bomb", bomb, "a zip bomb?"),
    ]:
        hostile = tmp_path / f"{name}.mlrepro"
        _rewrite(path, hostile, _edit_program(edit))
        result = run_cli("predict", "--bundle", hostile, "-i", inputs, "-o", tmp_path / "o.csv")
        assert result.code == 4 and says in result.err, result.err
        assert "is not a usable program" in result.err
        assert not (tmp_path / "o.csv").exists()
        assert load_bundle(hostile, runtime="sklearn").runtime == "sklearn"


def test_a_program_must_belong_to_its_bundle(diabetes, cancer, tmp_path):
    _, path, _ = diabetes
    with zipfile.ZipFile(cancer[1]) as zf:
        other = zf.read(fmt.PROGRAM)

    def refused(members: dict[str, bytes]) -> None:
        members[fmt.ACCELERATION] = json.dumps(
            {**json.loads(members[fmt.ACCELERATION]), "status": "refused", "reason": "x"}
        ).encode()

    def nan_threshold(program: dict[str, bytes]) -> None:
        t = _array(program, "threshold")
        program["threshold.npy"] = npy(np.full_like(t, np.nan))

    def inf_leaves(program: dict[str, bytes]) -> None:
        program["value.npy"] = npy(np.full_like(_array(program, "value"), np.inf))

    cases = [
        (refused, "a program with status 'refused'"),
        (lambda m: m.pop(fmt.ACCELERATION), "a program with no acceleration record"),
        (lambda m: m.pop(fmt.PROGRAM), "no program with status 'accepted'"),
        (lambda m: m.update({fmt.PROGRAM: other}), "it is a classification program"),
        (_edit_program(nan_threshold), "a split has a NaN threshold"),
        (_edit_program(inf_leaves), "a leaf value is not finite"),
    ]
    for i, (change, says) in enumerate(cases):
        hostile = tmp_path / f"case{i}.mlrepro"
        _rewrite(path, hostile, change)
        for runtime in ("auto", "accelerated"):
            with pytest.raises(ArtifactError, match=re.escape(says)):
                load_bundle(hostile, runtime=runtime)
        assert load_bundle(hostile, runtime="sklearn").runtime == "sklearn"
        if i < 3:  # inspect says so, rather than describing the record alone
            shown = run_cli("inspect", hostile)
            assert shown.code == 0 and f"accelerated: INCONSISTENT ({says})" in shown.out
            assert run_cli("inspect", hostile, "--json").json()["acceleration_problem"] == says
    # the same program, recorded by another model's acceptance: refused too
    shuffled = tmp_path / "other-record.mlrepro"
    with zipfile.ZipFile(cancer[1]) as zf:
        other_record = zf.read(fmt.ACCELERATION)
    _rewrite(path, shuffled, lambda m: m.update({fmt.ACCELERATION: other_record}))
    with pytest.raises(ArtifactError, match="differs from the program its equivalence check"):
        load_bundle(shuffled)


def test_without_numba_auto_falls_back_and_says_so(diabetes, tmp_path):
    _, path, _ = diabetes
    script = tmp_path / "no_numba.py"
    script.write_text(
        "import sys, warnings\n"
        "sys.modules['numba'] = None  # as if the extra were not installed\n"
        "from mlrepro.delivery.api import load_bundle\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    b = load_bundle({str(path)!r})\n"
        "print(b.runtime)\n"
        "print([str(w.message) for w in caught if 'accelerated' in str(w.message)])\n"
        "try:\n"
        f"    load_bundle({str(path)!r}, runtime='accelerated')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    lines = done.stdout.splitlines()
    assert lines[0] == "sklearn", done.stderr
    assert "mlrepro[accelerate]" in lines[1]
    assert lines[2].startswith("UsageError") and "needs numba" in lines[2]


def test_manifest_option_makes_the_program_a_verified_artifact(tmp_path):
    project = tmp_path / "opt"
    train_project("diabetes", project)
    manifest = project / "mlrepro.yaml"
    spec = yaml.safe_load(manifest.read_text())
    spec["model"]["accelerate"] = True
    manifest.write_text(yaml.safe_dump(spec))
    assert run_cli("run", "-p", project, "-q").code == 0
    lock = json.loads((project / "mlrepro.lock").read_text())
    train = lock["stages"]["train"]
    assert "program" in train["outputs"]
    assert train["details"]["acceleration"]["status"] == "accepted"
    verified = run_cli("verify", "-p", project, "--json")
    assert verified.code == 0, verified.out
    stages = {s["stage"]: s for s in verified.json()["stages"]}
    assert stages["train"]["verdict"] == "identical"
    # the bundle carries the recorded program without --accelerate
    path = tmp_path / "opt.mlrepro"
    info = run_cli("bundle", "-p", project, "-o", path, "--json").json()
    assert info["acceleration"]["status"] == "accepted"
    with zipfile.ZipFile(path) as zf:
        assert fmt.hash_bytes(zf.read(fmt.PROGRAM)) == train["outputs"]["program"]["file_hash"]
    bad = yaml.safe_load(manifest.read_text())
    bad["model"]["accelerate"] = "yes"
    manifest.write_text(yaml.safe_dump(bad))
    result = run_cli("status", "-p", project)
    assert result.code == 2 and "model.accelerate" in result.err


def test_serve_reports_the_runtime_and_matches_sklearn(diabetes):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mlrepro.serving.http import create_app

    _, path, _ = diabetes
    records = json.loads(_inputs("diabetes").to_json(orient="records"))
    answers = {}
    for runtime in ("auto", "sklearn"):
        with TestClient(create_app(load_bundle(path, runtime=runtime))) as client:
            meta = client.get("/metadata").json()
            assert meta["runtime"]["name"] == ("sklearn" if runtime == "sklearn" else "accelerated")
            answers[runtime] = [
                client.post("/predict", json=[r]).json()["predictions"][0]["prediction"]
                for r in records[:5]
            ]
            if runtime == "auto":
                assert client.get("/metadata").json()["runtime"]["rows"]["accelerated"] >= 5
    assert answers["auto"] == pytest.approx(answers["sklearn"], rel=1e-9)


def test_help_names_the_runtime_options():
    for command in ("predict", "serve", "stream"):
        done = run_subprocess(command, "--help")
        assert "--runtime" in done.stdout
    assert "--accelerate" in run_subprocess("bundle", "--help").stdout


def test_warnings_free_load(diabetes):
    _, path, _ = diabetes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_bundle(path, check_environment=False)


def test_one_record_requests_skip_the_frame_and_agree_with_it(diabetes):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mlrepro.serving.http import create_app

    _, path, _ = diabetes
    records = json.loads(_inputs("diabetes").to_json(orient="records"))
    bundle = load_bundle(path)
    with TestClient(create_app(bundle)) as client:
        single = [client.post("/predict", json=[r]).json() for r in records]
        batch = client.post("/predict", json=records).json()
    assert [s["predictions"][0] for s in single] == batch["predictions"]
    assert bundle.pipeline.rows["accelerated"] >= 2 * len(records)
    # a record the fast rules do not settle (an unseen category) still gets the CLI's verdict
    with TestClient(create_app(bundle)) as client:
        bad = client.post("/predict", json=[{**records[0], "clinic": "mars"}])
    assert bad.status_code == 422


@pytest.fixture(scope="module")
def request_models(diabetes):
    from pydantic import TypeAdapter

    from mlrepro.serving.records import RequestModels

    bundle = load_bundle(diabetes[1], runtime="sklearn")
    models = RequestModels(bundle, max_batch=10)
    return bundle, models, TypeAdapter(models.batch)


# mostly valid values (the request models refuse the rest)
_NUMBERS = [0, 1, -3, 2.5, 0.1, 7, None, float("nan"), float("inf"), True, "1", "east"]
_CLINICS = ["east", "north", "south", "west", "east", "mars", None, 1, 2.5, True, ""]


def test_one_record_columns_never_pass_what_the_frame_rules_reject(request_models):
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from pydantic import ValidationError

    from mlrepro.predict.contract import columns_certainly_valid, fast_validate

    bundle, models, adapter = request_models
    names = list(bundle.metadata.input_columns)

    seen = {True: 0, False: 0}
    values_of = {n: _CLINICS if n == "clinic" else _NUMBERS for n in names}

    @settings(max_examples=300, deadline=None)
    @given(
        st.fixed_dictionaries(
            {
                n: st.one_of(st.sampled_from(values_of[n][:5]), st.sampled_from(values_of[n]))
                for n in names
            }  # fmt: skip
        )
    )
    def check(record):
        try:
            batch = adapter.validate_python([record])
        except ValidationError:
            return
        _, columns, _ = models.single(batch)
        frame, _ = models.frame(batch)
        certain = columns_certainly_valid(columns, bundle.contract)
        seen[certain] += 1
        if certain:
            assert fast_validate(frame, bundle.contract) is not None

    check()
    assert seen[True] > 10, seen  # (the request models already refuse most others)

    def one(**values):
        cols = {n: np.array([1.0]) for n in names} | {"clinic": ["east"]}
        return cols | {k: np.array([v]) if k != "clinic" else [v] for k, v in values.items()}

    assert columns_certainly_valid(one(), bundle.contract)
    for n, bad in [("age", float("nan")), ("age", float("inf")), ("clinic", "mars"),
                   ("clinic", 1), ("s1", "1")]:  # fmt: skip
        assert not columns_certainly_valid(one(**{n: bad}), bundle.contract), (n, bad)
    assert columns_certainly_valid(one(bmi=float("nan")), bundle.contract)  # nullable


def test_a_lightgbm_plugin_model_is_bundled_accelerated(tmp_path):
    """plugins: [lightgbm] with model.accelerate: the program is recorded in the lock,
    bundled, reported by inspect and used by load_bundle (issue 14b)."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("lightgbm") is None:
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail("CI=true but lightgbm (extra 'boosting') is not installed")
        pytest.skip("lightgbm is not installed (extra 'boosting')")
    project = tmp_path / "lgbm"
    shutil.copytree(
        EXAMPLES / "breast_cancer",
        project,
        ignore=shutil.ignore_patterns(".mlrepro", "mlrepro.lock", "*.pid", "predictions*"),
    )
    manifest = project / "mlrepro.yaml"
    spec = yaml.safe_load(manifest.read_text())
    spec["plugins"] = ["lightgbm"]
    spec["model"]["estimator"] = "lightgbm.LGBMClassifier"
    spec["model"]["params"] = {"n_estimators": 20, "num_leaves": 7, "verbose": -1, "n_jobs": 1}
    spec["model"]["accelerate"] = True
    manifest.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert run_cli("run", "-p", project, "-q").code == 0
    train = json.loads((project / "mlrepro.lock").read_text())["stages"]["train"]
    record = train["details"]["acceleration"]
    assert record["status"] == "accepted", record
    assert record["runtime"]["model"] == "LGBMClassifier" and record["runtime"]["trees"] == 20
    assert record["equivalence"]["max_abs"] <= 1e-15  # LightGBM's sigmoid vs numpy's: an ulp
    assert record["equivalence"]["labels_identical"] is True
    path = tmp_path / "lgbm.mlrepro"
    info = run_cli("bundle", "-p", project, "-o", path, "--json")
    assert info.code == 0, info.err
    assert info.json()["acceleration"] == record
    inspected = run_cli("inspect", path, "--json")
    assert inspected.code == 0 and inspected.json()["acceleration"] == record
    assert "accelerated: yes" in run_cli("inspect", path).out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast, slow = load_bundle(path), load_bundle(path, runtime="sklearn")
    assert fast.runtime == "accelerated"
    frame = _inputs("breast_cancer")
    a, b = fast.predict(frame), slow.predict(frame)
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        assert a[col].tolist() == b[col].tolist(), col  # bit for bit
    assert fast.pipeline.rows["accelerated"] > 0
