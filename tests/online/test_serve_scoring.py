"""Serving scores like the CLI: verdicts and reasons of Bundle.validate, same predictions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlrepro import load_bundle
from mlrepro.predict.contract import columns_certainly_valid, fast_validate
from mlrepro.serving.records import RequestModels
from mlrepro.serving.scoring import Scorer


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


def frames(bundle, max_rows: int = 6, raw: bool = False):
    """Frames as the API builds them (float64 numbers; text or None in text columns);
    ``raw``: (frame, the columns it was built from)."""
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
        return (pd.DataFrame(data), data) if raw else pd.DataFrame(data)

    return build()


@pytest.mark.parametrize(("name", "examples"), [("diabetes", 20), ("cancer", 8)])
def test_verdicts_and_reasons_are_the_cli_validators(request, name, examples):
    bundle = request.getfixturevalue(name)
    scorer = Scorer(bundle)

    # Modest example count: each case runs the (slow) pandera validator too.
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(frame=frames(bundle))
    def agree(frame):
        with np.errstate(over="ignore"):
            scored = scorer.score(frame)
        reasons = bundle.validate(frame).reasons
        # the shortcut never passes a batch the CLI rejects (nor, here, the other way round)
        assert scorer.certainly_valid(frame) == (not reasons)
        model_rejected = {p for p, why in scored.rejects.items() if "model rejected" in why}
        assert {p: w for p, w in scored.rejects.items() if p not in model_rejected} == reasons
        assert scored.positions == [i for i in range(len(frame)) if i not in scored.rejects]

    agree()


@pytest.mark.parametrize(("name", "examples"), [("diabetes", 20), ("cancer", 8)])
def test_the_raw_column_check_is_never_looser_than_the_validator(request, name, examples):
    bundle = request.getfixturevalue(name)
    scorer = Scorer(bundle)

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=frames(bundle, raw=True))
    def agree(case):
        frame, columns = case
        if columns_certainly_valid(columns, bundle.contract):
            assert fast_validate(frame, bundle.contract) is not None
            assert not bundle.validate(frame).reasons
        with np.errstate(over="ignore"):
            with_columns, without = scorer.score(frame, None, columns), scorer.score(frame)
        assert with_columns.rejects == without.rejects
        assert with_columns.positions == without.positions
        assert with_columns.rows == without.rows

    agree()


def test_text_numbers_are_coerced_like_the_cli_does(diabetes, new_visits):
    frame = pd.DataFrame(new_visits[:3])[list(diabetes.metadata.input_columns)]
    as_text = frame.astype(object).map(lambda v: None if v != v else str(v))
    scored = Scorer(diabetes).score(as_text)
    expected = diabetes.predict(frame)["prediction"].tolist()
    assert [r["prediction"] for r in scored.rows] == expected


def test_the_full_cli_path_gives_the_same_answers(diabetes, new_visits):
    models = RequestModels(diabetes, max_batch=100)
    frame, ids = models.frame([models.record.model_validate(r) for r in new_visits])
    fast = Scorer(diabetes).score(frame, ids)
    slow_scorer = Scorer(diabetes, fast_path=False)
    slow = slow_scorer.score(frame, ids)
    assert slow_scorer.counts == {"fast": 0, "full": 1}
    assert fast.rows == slow.rows and fast.positions == slow.positions


def test_valid_batches_skip_the_slow_path(diabetes, new_visits):
    models = RequestModels(diabetes, max_batch=100)
    frame, ids = models.frame([models.record.model_validate(r) for r in new_visits])
    scorer = Scorer(diabetes)
    scored = scorer.score(frame, ids)
    assert scorer.counts == {"fast": 1, "full": 0}, "the CLI path ran for a valid batch"
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
