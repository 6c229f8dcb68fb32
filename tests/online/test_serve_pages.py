"""``mlrepro serve``'s GET /card and GET /report (FastAPI test client, real bundles)."""

from __future__ import annotations

import shutil
import warnings

import pytest

from mlrepro import load_bundle
from mlrepro.serving.http import create_app

with warnings.catch_warnings():  # starlette's notice about a future httpx release
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def served(bundles):
    model = load_bundle(bundles["breast_cancer"])
    with TestClient(create_app(model)) as c:
        yield model, c


def test_card_is_the_bundles_model_card(served):
    model, client = served
    res = client.get("/card")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/markdown")
    assert res.text == model.card and model.model_fingerprint in res.text


def test_report_is_a_self_contained_page_of_the_bundle(served):
    model, client = served
    res = client.get("/report")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in res.headers["content-security-policy"]
    html = res.text
    for section in ("summary", "lineage", "verify", "metrics", "plots", "environment"):
        assert f'<section id="{section}">' in html
    assert model.fingerprint in html and "from the bundle" in html
    assert "a bundle carries no training rows" in html
    assert f"{model.metadata.metrics['accuracy']:.6g}" in html
    assert "<script" not in html
    assert client.get("/report").text == html  # rendered once


def test_report_of_a_bundle_replaced_on_disk_is_503(bundles, tmp_path):
    path = tmp_path / "model.mlrepro"
    shutil.copyfile(bundles["diabetes"], path)
    model = load_bundle(path)
    shutil.copyfile(bundles["breast_cancer"], path)  # another bundle under the same name
    with TestClient(create_app(model)) as client:
        res = client.get("/report")
        assert res.status_code == 503
        body = res.json()
        assert body["error"] == "artifact" and "not the expected" in body["message"]
        assert client.get("/card").status_code == 200  # the loaded card is still served
