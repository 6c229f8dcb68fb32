"""``mlrepro serve`` as a real uvicorn process on loopback, called over HTTP."""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from mlrepro import load_bundle

from .conftest import Proc, tamper

LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def start(bundle, *args: str) -> tuple[Proc, str]:
    proc = Proc("serve", str(bundle), "--port", "0", "--log-level", "warning", *args)
    try:
        line = proc.wait_for("listening on", timeout=90)
    except BaseException:
        proc.stop()
        raise
    base = LISTENING.search(line).group(1)
    return proc, base


def wait_ready(base: str) -> httpx.Client:
    """A client for ``base`` once GET /ready answers 200."""
    for _ in range(300):  # the socket is bound before uvicorn accepts: poll briefly
        try:
            if httpx.get(f"{base}/ready", timeout=30).status_code == 200:
                return httpx.Client(base_url=base, timeout=30)
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{base}/ready never answered 200")


@pytest.fixture(scope="module")
def server(bundles) -> Iterator[tuple[Proc, httpx.Client]]:
    proc, base = start(bundles["diabetes"], "--max-batch", "50")
    try:
        with wait_ready(base) as client:
            yield proc, client
    finally:
        proc.stop()


def test_a_real_server_predicts_over_http(server, bundles, new_visits):
    _, client = server
    r = client.post("/predict", json=new_visits)
    assert r.status_code == 200, r.text
    model = load_bundle(bundles["diabetes"])
    expected = model.predict(pd.DataFrame(new_visits))
    assert [p["prediction"] for p in r.json()["predictions"]] == expected["prediction"].tolist()
    assert r.json()["model_fingerprint"] == model.model_fingerprint
    assert client.get("/ready").json()["bundle_fingerprint"] == model.fingerprint


def test_a_real_server_refuses_bad_input_with_422_and_413(server, new_visits):
    _, client = server
    r = client.post("/predict", json=[{**new_visits[0], "bmi": "heavy"}])
    assert r.status_code == 422
    assert r.json()["issues"][0]["field"] == "bmi"
    assert client.post("/predict", json=new_visits * 3).status_code == 413


def test_sigterm_stops_the_server_cleanly(bundles, new_visits):
    proc, base = start(bundles["breast_cancer"])
    try:
        with wait_ready(base) as client:
            assert client.get("/health").status_code == 200
        proc.signal(signal.SIGTERM)
        assert proc.finish() == 0, proc.stderr()
    finally:
        proc.stop()


def test_a_tampered_bundle_refuses_to_start(bundles, tmp_path):
    bad = tamper(bundles["diabetes"], tmp_path / "tampered.mlrepro")
    proc = Proc("serve", str(bad), "--port", "0")
    try:
        rc = proc.finish()
    finally:
        proc.stop()
    err = proc.stderr()
    assert rc == 4, err
    assert "member metadata.json does not match its recorded hash" in err
    assert "refusing to load it" in err
    assert "listening" not in err


def test_a_bundle_other_than_the_expected_one_refuses_to_start(bundles):
    proc = Proc("serve", str(bundles["diabetes"]), "--port", "0", "--expect", "b3:" + "0" * 64)
    try:
        rc = proc.finish()
    finally:
        proc.stop()
    assert rc == 4
    assert "not the expected b3:000" in proc.stderr()


def test_a_port_in_use_is_a_clear_error(bundles):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = Proc("serve", str(bundles["breast_cancer"]), "--port", str(port))
        try:
            rc = proc.finish()
        finally:
            proc.stop()
    assert rc == 2
    assert f"127.0.0.1:{port} is already in use" in proc.stderr()
    assert "hint: pick another --port" in proc.stderr()


def test_the_listening_socket_is_tcp_with_nodelay():
    from mlrepro.serving.process import bind

    # proto 0 would make asyncio skip TCP_NODELAY: ~40 ms of Nagle delay per response
    with bind("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


@pytest.mark.slow
def test_several_workers_serve_the_same_verified_model(bundles, new_biopsies):
    proc, base = start(bundles["breast_cancer"], "--workers", "2")
    try:
        with wait_ready(base) as client:
            fingerprints = set()
            for _ in range(8):
                r = client.post("/predict", json=new_biopsies[:3], headers={"connection": "close"})
                assert r.status_code == 200, r.text
                fingerprints.add(r.json()["bundle_fingerprint"])
            assert fingerprints == {load_bundle(bundles["breast_cancer"]).fingerprint}
        assert "2 worker processes" in proc.stderr()
        proc.signal(signal.SIGTERM)
        assert proc.finish() == 0, proc.stderr()
    finally:
        proc.stop()


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(server):
    """Schema-driven fuzzing of every operation, valid and invalid data: never a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    _, client = server
    base = str(client.base_url).rstrip("/")
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    seen: dict[str, set[int]] = {}

    def fuzzer(op, mode):
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=40 if op.method.upper() == "POST" else 3,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def fuzz(case):
            response = case.call(base_url=base)
            seen.setdefault(op.path, set()).add(response.status_code)
            case.validate_response(response, checks=checks)

        return fuzz

    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} == {
        "/health",
        "/ready",
        "/metadata",
        "/predict",
        "/card",
        "/report",
    }
    for op in operations:
        fuzzer(op, GenerationMode.POSITIVE)()
        if op.method.upper() == "POST":
            fuzzer(op, GenerationMode.NEGATIVE)()
    assert 200 in seen["/predict"] and 422 in seen["/predict"], seen
