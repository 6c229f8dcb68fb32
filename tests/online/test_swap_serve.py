"""``mlrepro serve --registry --alias``: hot swaps under load, as real processes on loopback.

8 clients send requests for 30 s while the alias moves 5 times: to B (signed), to a tampered
bundle, to an unsigned one, to C (signed), and back to A (rollback). No answer may fail;
the fingerprints each client sees must follow the alias order A, B, C, A; an answer from a
model must arrive after the alias moved to it, and a request sent after the server logged
a swap must get the new model (or a later one).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from registry_util import forge_move, keys, models, signed, tampered_bytes

from mlrepro import load_bundle

from .conftest import Proc

pytestmark = pytest.mark.slow
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
CLIENTS = 8
SECONDS = 30.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("swap_serve")
    m, k = models(base), keys(base)
    return {
        **m,
        "A": signed(m["a"], k["me"], base / "A.mlrepro"),
        "B": signed(m["b"], k["me"], base / "B.mlrepro"),
        "C": signed(m["c"], k["me"], base / "C.mlrepro"),
        "pub": Path(f"{k['me']}.pub"),
        "base": base,
    }


def publish(registry: Path, bundle: Path, *extra: str) -> float:
    from cli_helpers import run_cli

    before = time.monotonic()
    r = run_cli("publish", str(bundle), "--registry", str(registry), "--alias", "prod", *extra)
    assert r.returncode == 0, r.stderr
    return before


def test_hot_swaps_under_load_lose_nothing_and_follow_the_alias(setup, tmp_path, new_visits):
    registry = tmp_path / "registry"
    publish(registry, setup["A"])
    fp = {x: load_bundle(setup[x]).model_fingerprint for x in "ABC"}
    proc = Proc(
        "serve",
        "--registry",
        str(registry),
        "--alias",
        "prod",
        "--trust",
        str(setup["pub"]),
        "--poll",
        "0.3",
        "--port",
        "0",
        "--log-level",
        "warning",
    )
    try:
        base = LISTENING.search(proc.wait_for("listening on", timeout=120)).group(1)
        with httpx.Client(base_url=base, timeout=60) as c:
            for _ in range(300):
                try:
                    if c.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
        answers: list[list[tuple[float, float, int, str | None]]] = [[] for _ in range(CLIENTS)]
        failures: list[str] = []
        stop = threading.Event()

        def client(i: int) -> None:
            body = new_visits[i % 10 : i % 10 + 5]
            with httpx.Client(base_url=base, timeout=60) as http:
                while not stop.is_set():
                    sent = time.monotonic()
                    try:
                        r = http.post("/predict", json=body)
                    except httpx.HTTPError as exc:
                        failures.append(f"client {i}: {type(exc).__name__}: {exc}")
                        continue
                    got = time.monotonic()
                    ok = r.status_code == 200
                    answers[i].append(
                        (
                            sent,
                            got,
                            r.status_code,
                            r.json().get("model_fingerprint") if ok else r.text,
                        )
                    )

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        started = time.monotonic()
        for t in threads:
            t.start()
        rss, moved_at, seen_at = [], {}, {}
        server = psutil.Process(proc.popen.pid)

        def at(offset: float) -> None:
            time.sleep(max(0.0, started + offset - time.monotonic()))

        at(4)
        moved_at[1] = publish(registry, setup["B"])
        proc.wait_for("(move 2, publish)", timeout=60)
        seen_at[1] = time.monotonic()
        rss.append(server.memory_info().rss)
        at(9)
        c = load_bundle(setup["C"])
        forge_move(registry, "prod", tampered_bytes(setup["C"]), c.fingerprint, fp["C"])
        proc.wait_for("refused move 3", timeout=60)
        at(13)
        publish(registry, setup["c"])  # unsigned
        proc.wait_for("refused move 4", timeout=60)
        at(17)
        moved_at[2] = publish(registry, setup["C"])
        proc.wait_for("(move 5, publish)", timeout=60)
        seen_at[2] = time.monotonic()
        rss.append(server.memory_info().rss)
        at(23)
        from cli_helpers import run_cli

        moved_at[3] = time.monotonic()
        r = run_cli(
            "registry", "rollback", "--registry", str(registry), "--alias", "prod", "--to", "1"
        )
        assert r.returncode == 0, r.stderr
        proc.wait_for("(move 6, rollback)", timeout=60)
        seen_at[3] = time.monotonic()
        rss.append(server.memory_info().rss)
        # clients keep going at least 3 s after the last swap (a loaded machine may be late)
        at(max(SECONDS, seen_at[3] - started + 3.0))
        stop.set()
        for t in threads:
            t.join(60)
        with httpx.Client(base_url=base, timeout=60) as http:
            assert http.get("/health").json() == {"status": "ok"}
            status = http.get("/metadata").json()["registry"]
    finally:
        proc.stop()

    assert not failures, failures[:5]
    bad = [a for client_answers in answers for a in client_answers if a[2] != 200]
    assert not bad, bad[:5]
    order = [fp["A"], fp["B"], fp["C"], fp["A"]]
    for i, client_answers in enumerate(answers):
        assert len(client_answers) > 20, f"client {i} answered only {len(client_answers)} times"
        runs: list[str] = []
        generation = []
        for _, _, _, f in client_answers:
            if not runs or runs[-1] != f:
                runs.append(f)
            generation.append(len(runs) - 1)
        assert runs == order, f"client {i} saw {runs}"
        for (sent, got, _, _), g in zip(client_answers, generation, strict=True):
            if g >= 1:  # an answer from the new model only after the alias moved to it
                assert got >= moved_at[g]
            for later in (1, 2, 3):  # a request sent after a swap was logged gets the new model
                if sent > seen_at[later]:
                    assert g >= later
    assert status["swaps"] == 3 and status["refusals"] == 2
    assert (
        "does not match" in status["last_refusal"]["reason"]
        or "not signed" in status["last_refusal"]["reason"]
    )
    assert status["current"]["model_fingerprint"] == fp["A"]
    # RSS does not grow swap after swap (the old model is released once its requests end)
    growth = (rss[-1] - rss[0]) / 2**20
    total = sum(len(a) for a in answers)
    print(f"{total} answers; RSS after each swap (MiB): {[round(r / 2**20) for r in rss]}")
    assert growth < 48, f"RSS after each swap (MiB): {[round(r / 2**20) for r in rss]}"
