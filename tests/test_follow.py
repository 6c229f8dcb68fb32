"""Following an alias in-process: ``load_bundle(registry=, alias=, follow=True)``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import run_cli
from registry_util import failing_bundle, forge_move, keys, models, signed, tampered_bytes

from mlrepro import load_bundle
from mlrepro.delivery.registry import open_registry
from mlrepro.errors import UsageError

NEW_VISITS = (
    Path(__file__).resolve().parents[1] / "examples" / "diabetes" / "data" / "new_visits.csv"
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("follow")


@pytest.fixture(scope="module")
def m(base: Path) -> dict[str, Path]:
    return models(base)


@pytest.fixture(scope="module")
def k(base: Path) -> dict[str, Path]:
    return keys(base)


@pytest.fixture(scope="module")
def visits() -> pd.DataFrame:
    return pd.read_csv(NEW_VISITS)


def _publish(url: Path, bundle: Path, alias: str = "prod") -> None:
    r = run_cli("publish", str(bundle), "--registry", str(url), "--alias", alias)
    assert r.returncode == 0, r.stderr


def test_a_followed_alias_swaps_after_a_move_and_back_after_a_rollback(m, tmp_path, visits):
    url = tmp_path / "r"
    _publish(url, m["a"])
    a, b = load_bundle(m["a"]), load_bundle(m["b"])
    with load_bundle(registry=str(url), alias="prod", follow=True, poll=3600) as model:
        first = model.predict(visits)
        assert set(first["model_fingerprint"]) == {a.model_fingerprint}
        assert model.check_now() == "unchanged"
        _publish(url, m["b"])
        assert model.check_now() == "swapped"
        second = model.predict(visits)
        assert set(second["model_fingerprint"]) == {b.model_fingerprint}
        expected = b.predict(visits)["prediction"]
        assert second["prediction"].tolist() == expected.tolist()
        status = model.status()
        assert status["current"]["model_fingerprint"] == b.model_fingerprint
        assert status["swaps"] == 1 and status["refusals"] == 0
        assert status["last_swap"]["from"] == a.model_fingerprint
        run_cli("registry", "rollback", "--registry", str(url), "--alias", "prod")
        assert model.check_now() == "swapped"
        assert model.model_fingerprint == a.model_fingerprint


def test_without_follow_the_alias_is_read_once(m, tmp_path):
    url = tmp_path / "r"
    _publish(url, m["a"])
    model = load_bundle(registry=str(url), alias="prod")
    assert model.model_fingerprint == load_bundle(m["a"]).model_fingerprint
    assert not hasattr(model, "check_now")


def test_bad_bundles_under_the_alias_are_refused_and_the_old_model_keeps_serving(
    m, k, tmp_path, visits
):
    url = tmp_path / "r"
    me = f"{k['me']}.pub"
    _publish(url, signed(m["a"], k["me"], tmp_path / "a.mlrepro"))
    a, b = load_bundle(m["a"]), load_bundle(m["b"])
    model = load_bundle(registry=str(url), alias="prod", follow=True, poll=3600, trusted_keys=[me])
    try:
        model.predict(visits)  # recorded rows for the warm-up
        # 1. tampered bytes put under the alias by hand (publish would refuse them)
        forge_move(url, "prod", tampered_bytes(m["b"]), b.fingerprint, b.model_fingerprint)
        assert model.check_now() == "refused"
        assert "does not match its recorded" in model.status()["last_refusal"]["reason"]
        # the same refused move is not tried again at every poll
        assert model.check_now() == "unchanged" and model.status()["refusals"] == 1
        # 2. unsigned
        _publish(url, m["b"])
        assert model.check_now() == "refused"
        assert "is not signed" in model.status()["last_refusal"]["reason"]
        # 3. signed by another key
        _publish(url, signed(m["c"], k["other"], tmp_path / "c.other.mlrepro"))
        assert model.check_now() == "refused"
        assert "another key" in model.status()["last_refusal"]["reason"]
        # 4. another input contract
        _publish(url, signed(m["cancer"], k["me"], tmp_path / "cancer.mlrepro"))
        assert model.check_now() == "refused"
        assert "input contract changed" in model.status()["last_refusal"]["reason"]
        assert model.status()["refusals"] == 4 and model.status()["swaps"] == 0
        out = model.predict(visits)
        assert set(out["model_fingerprint"]) == {a.model_fingerprint}
        # 5. a good one is taken
        _publish(url, signed(m["c"], k["me"], tmp_path / "c.mlrepro"))
        assert model.check_now() == "swapped"
        assert model.model_fingerprint == load_bundle(m["c"]).model_fingerprint
    finally:
        model.close()


def test_allow_contract_change_takes_another_contract(m, tmp_path):
    url = tmp_path / "r"
    _publish(url, m["a"])
    with load_bundle(
        registry=str(url), alias="prod", follow=True, poll=3600, allow_contract_change=True
    ) as model:
        _publish(url, m["cancer"])
        assert model.check_now() == "swapped"
        assert model.metadata.task == "classification"


def test_a_model_that_fails_its_warm_up_is_refused(m, tmp_path, visits):
    url = tmp_path / "r"
    _publish(url, m["a"])
    a = load_bundle(m["a"])
    with load_bundle(registry=str(url), alias="prod", follow=True, poll=3600) as model:
        model.predict(visits)  # recorded rows
        _publish(url, failing_bundle(m["a"], tmp_path / "failing.mlrepro"))
        assert model.check_now() == "refused"
        assert "this model cannot predict" in model.status()["last_refusal"]["reason"]
        assert set(model.predict(visits)["model_fingerprint"]) == {a.model_fingerprint}
        assert model.bundle.pipeline is not None and model.status()["swaps"] == 0


def test_an_unreachable_registry_keeps_the_current_model(m, tmp_path, visits):
    url = tmp_path / "r"
    _publish(url, m["a"])
    with load_bundle(registry=str(url), alias="prod", follow=True, poll=3600) as model:
        shutil.rmtree(url)
        assert model.check_now() == "error"
        assert model.status()["check_errors"] == 1
        out = model.predict(visits)
        assert set(out["model_fingerprint"]) == {model.model_fingerprint}


def test_an_alias_that_does_not_exist_is_a_usage_error(m, tmp_path):
    url = tmp_path / "r"
    _publish(url, m["a"], alias="staging")
    with pytest.raises(UsageError, match="alias 'prod' does not exist"):
        load_bundle(registry=str(url), alias="prod", follow=True)
    r = run_cli(
        "predict",
        "--registry",
        str(url),
        "--alias",
        "prod",
        "-i",
        str(NEW_VISITS),
        "-o",
        str(tmp_path / "p.csv"),
    )
    assert r.returncode == 2 and "mlrepro publish" in r.stderr
    r = run_cli("predict", "--registry", str(url), "-i", str(NEW_VISITS), "-o", "p.csv")
    assert r.returncode == 2 and "go together" in r.stderr


def test_predict_with_a_registry_alias_writes_its_model_fingerprint(m, tmp_path):
    url = tmp_path / "r"
    _publish(url, m["b"])
    out = tmp_path / "p.csv"
    r = run_cli(
        "predict",
        "--registry",
        str(url),
        "--alias",
        "prod",
        "-i",
        str(NEW_VISITS),
        "-o",
        str(out),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    fp = load_bundle(m["b"]).model_fingerprint
    assert pd.read_csv(out)["model_fingerprint"].unique().tolist() == [fp]


def test_a_poll_interval_must_be_positive(m, tmp_path):
    url = tmp_path / "r"
    _publish(url, m["a"])
    with pytest.raises(UsageError, match="--poll 0"):
        load_bundle(registry=str(url), alias="prod", follow=True, poll=0)
    reg = open_registry(str(url))
    assert reg.current("prod").seq == 1


def test_publishing_the_same_bundle_again_is_not_a_swap(m, tmp_path):
    url = tmp_path / "r"
    _publish(url, m["a"])
    with load_bundle(registry=str(url), alias="prod", follow=True, poll=3600) as model:
        _publish(url, m["a"])
        assert model.check_now() == "unchanged"
        assert model.status()["current"]["seq"] == 2 and model.status()["swaps"] == 0
