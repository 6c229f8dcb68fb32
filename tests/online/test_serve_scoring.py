"""The serving shortcut gives the CLI's verdicts: property tests against Bundle.validate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlrepro import load_bundle
from mlrepro.records import RequestModels
from mlrepro.scoring import Scorer, compile_rules


@pytest.fixture(scope="module")
def diabetes(bundles):
    return load_bundle(bundles["diabetes"])


@pytest.fixture(scope="module")
def cancer(bundles):
    return load_bundle(bundles["breast_cancer"])


NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0]),
)


def frames(bundle, max_rows: int = 6):
    """Frames as the API builds them (float64 numbers; text or None in text columns)."""
    columns = {}
    for spec in bundle.columns:
        if spec.categories:
            cats = [*spec.categories, "mars", "", "East"]
            columns[spec.name] = st.one_of(st.sampled_from(cats), st.none())
        else:
            columns[spec.name] = NUMBERS

    @st.composite
    def build(draw):
        n = draw(st.integers(1, max_rows))
        data = {}
        for spec in bundle.columns:
            values = [draw(columns[spec.name]) for _ in range(n)]
            data[spec.name] = np.array(values, "float64") if not spec.categories else values
        return pd.DataFrame(data)

    return build()


def cli_verdicts(bundle, frame) -> list[bool]:
    reasons = bundle.validate(frame).reasons
    return [i not in reasons for i in range(len(frame))]


def test_the_example_contracts_compile_to_fast_rules(diabetes, cancer):
    for bundle in (diabetes, cancer):
        rules = compile_rules(bundle.contract.schema())
        assert rules is not None
        assert {r.column for r in rules} == set(bundle.metadata.input_columns)
    kinds = {r.column: (r.kind, r.nullable) for r in compile_rules(diabetes.contract.schema())}
    assert kinds["clinic"] == ("isin", False)
    assert kinds["bmi"] == ("number", True)
    assert kinds["age"] == ("number", False)


@pytest.mark.parametrize(("name", "examples"), [("diabetes", 30), ("cancer", 10)])
def test_fast_checks_agree_with_the_cli_validator(request, name, examples):
    bundle = request.getfixturevalue(name)
    scorer = Scorer(bundle)

    # Modest example count: each case runs the (slow) pandera validator too.
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(frame=frames(bundle))
    def agree(frame):
        mask = scorer.valid_mask(frame)
        assert mask is not None
        assert mask.tolist() == cli_verdicts(bundle, frame)

    agree()


def test_uncoerced_columns_are_left_to_the_cli_validator(diabetes):
    frame = pd.DataFrame({c: ["1.5"] for c in diabetes.metadata.input_columns})
    frame["clinic"] = ["north"]
    assert Scorer(diabetes).valid_mask(frame) is None


def test_unknown_checks_disable_the_shortcut_but_not_the_answers(diabetes, new_visits):
    models = RequestModels(diabetes, max_batch=100)
    batch = [models.record.model_validate(r) for r in new_visits]
    frame, ids = models.frame(batch)
    fast = Scorer(diabetes)
    slow = Scorer(diabetes)
    slow.rules = None
    assert fast.score(frame, ids).rows == slow.score(frame, ids).rows


def test_valid_batches_skip_the_slow_path(diabetes, new_visits, monkeypatch):
    models = RequestModels(diabetes, max_batch=100)
    frame, ids = models.frame([models.record.model_validate(r) for r in new_visits])
    scorer = Scorer(diabetes)

    def slow(*_):
        raise AssertionError("the CLI path ran for a valid batch")

    monkeypatch.setattr(scorer, "_score_slow", slow)
    scored = scorer.score(frame, ids)
    expected = diabetes.predict(pd.DataFrame(new_visits))["prediction"].tolist()
    assert [r["prediction"] for r in scored.rows] == expected
    assert scored.positions == list(range(20)) and not scored.rejects


def test_invalid_rows_get_the_cli_reasons(diabetes, new_visits):
    frame = pd.DataFrame(new_visits)[list(diabetes.metadata.input_columns)]
    frame.loc[2, "age"] = math.inf
    frame.loc[5, "clinic"] = "mars"
    scored = Scorer(diabetes).score(frame.reset_index(drop=True))
    assert scored.rejects == diabetes.validate(frame).reasons
    assert set(scored.rejects) == {2, 5}
    assert scored.positions == [i for i in range(20) if i not in (2, 5)]
