"""The REST API in-process (FastAPI test client): answers, errors, metadata, OpenAPI."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

from mlrepro import load_bundle
from mlrepro.serving.http import create_app

with warnings.catch_warnings():  # starlette's notice about a future httpx release
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient


def columns(records: list[dict]) -> dict[str, list]:
    return {k: [r.get(k) for r in records] for k in records[0]}


@pytest.fixture(scope="module")
def diabetes(bundles):
    return load_bundle(bundles["diabetes"])


@pytest.fixture(scope="module")
def client(diabetes):
    with TestClient(create_app(diabetes, max_batch=25)) as c:
        yield c


@pytest.fixture(scope="module")
def classifier(bundles):
    model = load_bundle(bundles["breast_cancer"])
    with TestClient(create_app(model)) as c:
        yield model, c


def test_predictions_equal_the_embedded_api(client, diabetes, new_visits):
    r = client.post("/predict", json=new_visits)
    assert r.status_code == 200, r.text
    body = r.json()
    expected = diabetes.predict(pd.DataFrame(new_visits))
    assert body["model_fingerprint"] == diabetes.model_fingerprint
    assert body["bundle_fingerprint"] == diabetes.fingerprint
    assert body["count"] == 20
    assert [p["visit_id"] for p in body["predictions"]] == expected["visit_id"].tolist()
    assert [p["prediction"] for p in body["predictions"]] == expected["prediction"].tolist()


def test_columnar_form_answers_in_columns(client, diabetes, new_visits):
    r = client.post("/predict", json=columns(new_visits))
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert set(preds) == {"visit_id", "prediction"}
    assert preds["prediction"] == diabetes.predict(pd.DataFrame(new_visits))["prediction"].tolist()


def test_classifier_answers_labels_and_probabilities(classifier, new_biopsies):
    model, c = classifier
    r = c.post("/predict", json=new_biopsies[:5])
    assert r.status_code == 200, r.text
    expected = model.predict(pd.DataFrame(new_biopsies[:5]))
    for got, (_, want) in zip(r.json()["predictions"], expected.iterrows(), strict=True):
        assert got["prediction"] == want["prediction"]
        assert got["proba_0"] == want["proba_0"] and got["proba_1"] == want["proba_1"]
        assert got["biopsy_id"] == want["biopsy_id"]


def test_invalid_records_get_422_with_each_record_and_field(client, new_visits):
    good = new_visits[0]
    bad = [
        good,
        {**good, "bmi": "abc"},
        {**good, "clinic": "mars", "s1": None},
        {k: v for k, v in good.items() if k != "age"},
    ]
    r = client.post("/predict", json=bad)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_input"
    assert body["message"] == "3 record(s) are invalid"
    assert "GET /metadata" in body["hint"]
    got = {(i["record"], i["field"]): i["reason"] for i in body["issues"]}
    assert set(got) == {(1, "bmi"), (2, "clinic"), (2, "s1"), (3, "age")}
    assert "valid number" in got[1, "bmi"]
    assert "'east', 'north', 'south' or 'west'" in got[2, "clinic"]
    assert got[3, "age"].startswith("missing field")


def test_nullable_columns_take_null_but_must_be_sent(client, new_visits):
    with_null = {**new_visits[0], "bp": None}
    assert client.post("/predict", json=[with_null]).status_code == 200
    without = {k: v for k, v in new_visits[0].items() if k != "bp"}
    r = client.post("/predict", json=[without])
    assert r.status_code == 422
    assert [(i["record"], i["field"]) for i in r.json()["issues"]] == [(0, "bp")]


def test_rows_the_model_rejects_get_422_not_500(client, new_visits):
    # finite, so valid for the schema, but past float32 once scaled: the forest refuses it
    huge = {k: (1e308 if isinstance(v, float) else v) for k, v in new_visits[0].items()}
    r = client.post("/predict", json=[new_visits[1], huge])
    assert r.status_code == 422
    [issue] = r.json()["issues"]
    assert issue["record"] == 1
    assert issue["reason"].startswith("the model rejected the row")


def test_records_the_model_rejects_one_and_all_get_422_per_record(client, new_visits):
    huge = {k: (1e308 if isinstance(v, float) else v) for k, v in new_visits[0].items()}
    r = client.post("/predict", json=[huge, huge])
    assert r.status_code == 422
    assert [i["record"] for i in r.json()["issues"]] == [0, 1]
    r = client.post("/predict", json=[huge] * 25)  # more than the rows tried one by one
    assert r.status_code == 422
    assert "the model rejected the input" in r.json()["message"]


def test_columns_of_different_lengths_are_refused(client, new_visits):
    body = columns(new_visits[:3])
    body["age"] = body["age"][:2]
    r = client.post("/predict", json=body)
    assert r.status_code == 422
    assert "same number of values" in r.json()["issues"][0]["reason"]


@pytest.mark.parametrize("form", ["records", "columns"])
def test_oversize_batches_get_413(client, new_visits, form):
    rows = (new_visits * 2)[:26]  # the limit is 25
    body = rows if form == "records" else columns(rows)
    r = client.post("/predict", json=body)
    assert r.status_code == 413
    assert r.json()["error"] == "too_large"
    assert "limit of 25" in r.json()["message"]
    assert "--max-batch" in r.json()["hint"]


def test_oversize_bodies_get_413_before_parsing(client):
    body = b"[" + b" " * (2 << 20) + b"]"
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "larger than" in r.json()["message"]


def test_chunked_bodies_are_limited_too(client, new_visits):
    def chunks(*parts: bytes):
        yield from parts

    big = chunks(b"[", b" " * (1 << 20), b" " * (1 << 20), b"]")
    r = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    small = chunks(b"[", json.dumps(new_visits[0]).encode(), b"]")
    r = client.post("/predict", content=small, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"null",
        b"42",
        b'"text"',
        b"[1, 2]",
        b"[[{}]]",
        b"{}",
        b'[{"clinic": {"a": 1}}]',
        b'[{"age": NaN}]',
        b'[{"age": 1e999}]',
        b'[{"age": ' + b"9" * 400 + b"}]",
        b"[" * 5000 + b"]" * 5000,
        '[{"clinic": "nörth\\u0000"}]'.encode(),
    ],
    ids=lambda body: repr(body[:24]),
)
def test_malformed_bodies_get_422_never_500(client, body):
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_input"
    assert r.json()["issues"]


def test_an_empty_batch_is_answered(client):
    r = client.post("/predict", json=[])
    assert r.status_code == 200
    assert r.json()["count"] == 0 and r.json()["predictions"] == []


def test_health_ready_and_metadata(client, diabetes):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert ready.json()["model_fingerprint"] == diabetes.model_fingerprint
    meta = client.get("/metadata").json()
    assert meta["bundle_fingerprint"] == diabetes.fingerprint
    assert meta["model_fingerprint"] == diabetes.model_fingerprint
    assert meta["features"] == list(diabetes.metadata.features)
    assert meta["input_columns"] == list(diabetes.metadata.input_columns)
    assert set(meta["metrics"]) == {"r2", "mae"}
    assert meta["card"].startswith("# Model card: diabetes-progression")
    schema = {c["name"]: c for c in meta["schema"]}
    assert schema["clinic"]["categories"] == ["east", "north", "south", "west"]
    assert schema["bmi"]["nullable"] is True and schema["age"]["nullable"] is False
    assert schema["visit_id"]["id"] is True


def test_openapi_request_schema_comes_from_the_bundle(client, diabetes):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    refs = json.dumps(body["schema"])
    assert "DiabetesProgressionRecord" in refs and "DiabetesProgressionColumns" in refs
    record = spec["components"]["schemas"]["DiabetesProgressionRecord"]
    props = record["properties"]
    assert list(props) == [*diabetes.metadata.input_columns, "visit_id"]
    assert record["required"] == list(diabetes.metadata.input_columns)
    assert props["clinic"]["enum"] == ["east", "north", "south", "west"]
    assert props["age"]["type"] == "number"
    assert {"type": "null"} in props["bmi"]["anyOf"]
    assert {"type": "integer"} in props["visit_id"]["anyOf"]
    assert body["schema"]["oneOf"][0]["maxItems"] == 25
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")
    assert "413" in responses


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'[{"age":', "the body is not valid JSON at character 8"),
        (b"not json", "the body is not valid JSON at character 0"),
        (b"", "the body is empty: send a JSON list of records or an object of columns"),
    ],
)
def test_unparsable_and_empty_bodies_are_named_as_such(client, body, reason):
    """Regression: a JSON syntax error was reported as field "8" ("the body must be a list"),
    an empty body as a "missing field"."""
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["issues"] == [{"record": None, "field": None, "reason": reason}]
