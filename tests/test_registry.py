"""The registry: content-addressed bundles, atomic alias moves with history, racing publishers."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from cli_helpers import run_cli
from registry_util import forge_move, keys, models, signed, tampered_bytes

from mlrepro import load_bundle
from mlrepro.delivery.registry import open_registry
from mlrepro.errors import ArtifactError, UsageError

RACE_MOVES = 15  # per publisher


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry")


@pytest.fixture(scope="module")
def m(base: Path) -> dict[str, Path]:
    return models(base)


@pytest.fixture(scope="module")
def k(base: Path) -> dict[str, Path]:
    return keys(base)


def _urls(tmp_path: Path) -> list[str]:
    return [str(tmp_path / "folder"), f"sqlite:///{tmp_path / 'registry.db'}"]


@pytest.mark.parametrize("kind", ["folder", "sqlite"])
def test_publish_list_history_rollback_through_the_cli(m, tmp_path, kind):
    url = dict(zip(["folder", "sqlite"], _urls(tmp_path), strict=True))[kind]
    fps = {label: load_bundle(m[label]) for label in "abc"}
    for label in "abc":
        r = run_cli("publish", str(m[label]), "--registry", url, "--alias", "production", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["model_fingerprint"] == fps[label].model_fingerprint
    run_cli("publish", str(m["a"]), "--registry", url, "--alias", "staging")
    listed = json.loads(run_cli("registry", "list", "--registry", url, "--json").stdout)
    assert {a["alias"]: a["moves"] for a in listed["aliases"]} == {"production": 3, "staging": 1}
    back = run_cli("registry", "rollback", "--registry", url, "--alias", "production", "--json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["model_fingerprint"] == fps["b"].model_fingerprint
    to_a = run_cli("registry", "rollback", "--registry", url, "--alias", "production", "--to", "1")
    assert to_a.returncode == 0, to_a.stderr
    hist = json.loads(
        run_cli("registry", "history", "--registry", url, "--alias", "production", "--json").stdout
    )["moves"]
    assert [h["seq"] for h in hist] == [1, 2, 3, 4, 5]
    assert [h["action"] for h in hist] == ["publish"] * 3 + ["rollback"] * 2
    assert [h["model_fingerprint"] for h in hist] == [
        fps[x].model_fingerprint for x in ("a", "b", "c", "b", "a")
    ]
    model = load_bundle(registry=url, alias="production")
    assert model.fingerprint == fps["a"].fingerprint
    # The same bytes are stored once (content-addressed).
    if kind == "folder":
        assert len(list((tmp_path / "folder" / "objects").iterdir())) == 3
    else:
        with sqlite3.connect(tmp_path / "registry.db") as db:
            assert db.execute("SELECT count(*) FROM mlrepro_registry_objects").fetchone() == (3,)


def test_registry_usage_errors(m, tmp_path):
    url = str(tmp_path / "r")
    r = run_cli("publish", str(m["a"]), "--registry", url, "--alias", "no/slash")
    assert r.returncode == 2 and "alias 'no/slash' is not valid" in r.stderr
    r = run_cli("publish", str(tmp_path / "missing.mlrepro"), "--registry", url, "--alias", "p")
    assert r.returncode == 4 and "does not exist" in r.stderr
    r = run_cli("registry", "list", "--registry", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    run_cli("publish", str(m["a"]), "--registry", url, "--alias", "p")
    r = run_cli("registry", "rollback", "--registry", url, "--alias", "p")
    assert r.returncode == 2 and "nothing to roll back to" in r.stderr
    r = run_cli("registry", "rollback", "--registry", url, "--alias", "p", "--to", "b3:feed")
    assert r.returncode == 2 and "never named" in r.stderr
    r = run_cli("registry", "history", "--registry", url, "--alias", "q")
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = run_cli("publish", str(m["a"]), "--registry", "nosuchdialect://x/y", "--alias", "p")
    assert r.returncode == 2 and "cannot use registry database" in r.stderr
    with pytest.raises(UsageError, match="registry= and alias="):
        load_bundle(m["a"], registry=url, alias="p")


def test_a_tampered_bundle_is_refused_by_publish(m, tmp_path):
    bad = tmp_path / "bad.mlrepro"
    bad.write_bytes(tampered_bytes(m["a"]))
    r = run_cli("publish", str(bad), "--registry", str(tmp_path / "r"), "--alias", "p")
    assert r.returncode == 4 and "does not match its recorded" in r.stderr
    assert not (tmp_path / "r" / "aliases" / "p").exists()


def test_a_bundle_modified_inside_the_registry_is_refused(m, tmp_path):
    url = tmp_path / "r"
    run_cli("publish", str(m["a"]), "--registry", str(url), "--alias", "p")
    (obj,) = (url / "objects").iterdir()
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0xFF
    obj.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its hash"):
        load_bundle(registry=str(url), alias="p")
    r = run_cli("predict", "--registry", str(url), "--alias", "p", "-i", "x.csv", "-o", "y.csv")
    assert r.returncode in (3, 4)


def test_a_forged_move_with_a_tampered_bundle_is_refused_before_unpickling(m, tmp_path):
    url = tmp_path / "r"
    a = load_bundle(m["a"])
    forge_move(url, "p", tampered_bytes(m["a"]), a.fingerprint, a.model_fingerprint)
    with pytest.raises(ArtifactError, match="does not match its recorded"):
        load_bundle(registry=str(url), alias="p")


def test_a_malformed_move_record_is_an_artifact_error(m, tmp_path):
    url = tmp_path / "r"
    run_cli("publish", str(m["a"]), "--registry", str(url), "--alias", "p")
    (url / "aliases" / "p" / "0000000002.json").write_text('{"alias": "p", "seq": "two"}')
    r = run_cli("registry", "history", "--registry", str(url), "--alias", "p")
    assert r.returncode == 4 and "malformed" in r.stderr
    (url / "aliases" / "p" / "0000000002.json").write_text("{not json")
    r = run_cli("registry", "list", "--registry", str(url))
    assert r.returncode == 4 and "not valid JSON" in r.stderr


def test_leftover_temp_files_of_a_killed_publisher_are_never_an_alias(m, tmp_path):
    url = tmp_path / "r"
    run_cli("publish", str(m["a"]), "--registry", str(url), "--alias", "p")
    # What a publisher killed mid-write leaves: a temp move and a partial object.
    (url / "aliases" / "p" / ".move-999-1-2.tmp").write_text('{"alias": "p", "se')
    (url / "objects" / ".tmp-999-x").write_bytes(b"PK\x03\x04 half a bundle")
    model = load_bundle(registry=str(url), alias="p")
    assert model.fingerprint == load_bundle(m["a"]).fingerprint
    r = run_cli("publish", str(m["b"]), "--registry", str(url), "--alias", "p", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["seq"] == 2


def test_trust_is_checked_at_publish_time(m, k, tmp_path):
    url = str(tmp_path / "r")
    r = run_cli(
        "publish", str(m["a"]), "--registry", url, "--alias", "p", "--trust", f"{k['me']}.pub"
    )
    assert r.returncode == 4 and "is not signed" in r.stderr
    good = signed(m["a"], k["me"], tmp_path / "a.signed.mlrepro")
    r = run_cli(
        "publish", str(good), "--registry", url, "--alias", "p", "--trust", f"{k['me']}.pub"
    )
    assert r.returncode == 0, r.stderr
    model = load_bundle(registry=url, alias="p", trusted_keys=[f"{k['me']}.pub"])
    assert model.fingerprint == load_bundle(m["a"]).fingerprint
    with pytest.raises(ArtifactError, match="another key"):
        load_bundle(registry=url, alias="p", trusted_keys=[f"{k['other']}.pub"])


# ------------------------------------------------------------------------------ races


def _publisher(url: str, bundle: str, alias: str, n: int, name: str, go) -> None:  # noqa: ANN001
    reg = open_registry(url, create=True)
    go.wait()
    for _ in range(n):
        reg.publish(bundle, alias, by=name)
    reg.close()


def _race(url: str, m: dict[str, Path]) -> list:
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [
        ctx.Process(target=_publisher, args=(url, str(m[label]), "prod", RACE_MOVES, label, go))
        for label in ("a", "b")
    ]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0, 0]
    reg = open_registry(url)
    try:
        return reg.history("prod")
    finally:
        reg.close()


def _check_race(moves: list, m: dict[str, Path]) -> None:
    assert [mv.seq for mv in moves] == list(range(1, 2 * RACE_MOVES + 1))  # no gap, no loss
    assert sorted(mv.by for mv in moves) == ["a"] * RACE_MOVES + ["b"] * RACE_MOVES
    fps = {label: load_bundle(m[label]).model_fingerprint for label in "ab"}
    for mv in moves:
        assert mv.model_fingerprint == fps[mv.by]
    for before, after in zip(moves, moves[1:], strict=False):
        assert after.previous == before.object  # each move saw the one before it


@pytest.mark.slow
def test_two_publishers_racing_on_one_alias_in_a_folder(m, tmp_path):
    moves = _race(str(tmp_path / "shared"), m)
    _check_race(moves, m)
    assert not [
        p for p in (tmp_path / "shared" / "aliases" / "prod").iterdir() if p.suffix != ".json"
    ]


@pytest.mark.slow
@pytest.mark.postgres
def test_two_publishers_racing_on_one_alias_in_postgresql(m, pg_clean_schema):
    moves = _race(pg_clean_schema.url, m)
    _check_race(moves, m)


@pytest.mark.postgres
def test_postgresql_registry_notifies_followers(m, pg_clean_schema):
    import threading

    url = pg_clean_schema.url
    reg = open_registry(url)
    reg.publish(m["a"], "prod")
    assert reg.watch == "listen"
    stop = threading.Event()
    woke = threading.Event()

    def waiter() -> None:
        reg.wait(120, stop)
        woke.set()

    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    other = open_registry(url)
    try:
        # wait() times out after 120 s; these publishes take at most 50 s, so waking up
        # means a NOTIFY arrived (publish again in case the first came before the LISTEN).
        for i in range(100):
            other.publish(m["b"] if i % 2 == 0 else m["a"], "prod")
            if woke.wait(0.5):
                break
        assert woke.is_set(), "wait() was not woken by NOTIFY"
        assert not stop.is_set()
    finally:
        stop.set()
        t.join(10)
        other.close()
        reg.close()


@pytest.mark.postgres
def test_a_follower_on_postgresql_swaps_on_notify_without_waiting_for_the_poll(m, pg_clean_schema):
    import time

    url = pg_clean_schema.url
    reg = open_registry(url)
    reg.publish(m["a"], "prod")
    a = load_bundle(m["a"])
    # poll=3600: without NOTIFY the next look at the alias would be an hour away. The
    # follower's LISTEN starts in its thread; publish again in case it was not yet in place.
    with load_bundle(registry=url, alias="prod", follow=True, poll=3600) as model:
        assert model.status()["watch"] == "listen"
        for i in range(30):
            reg.publish(m["b"] if i % 2 == 0 else m["c"], "prod")
            deadline = time.monotonic() + 2
            while model.model_fingerprint == a.model_fingerprint and time.monotonic() < deadline:
                time.sleep(0.05)
            if model.model_fingerprint != a.model_fingerprint:
                break
        assert model.model_fingerprint != a.model_fingerprint, "never woken by NOTIFY"
        assert model.status()["swaps"] >= 1
    reg.close()


@pytest.mark.slow
def test_two_publishers_racing_on_one_alias_in_sqlite(m, tmp_path):
    moves = _race(f"sqlite:///{tmp_path / 'registry.db'}", m)
    _check_race(moves, m)
