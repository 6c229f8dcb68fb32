"""Option errors of serve/stream with --trust/--registry/--alias (refused before any work)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run_cli
from registry_util import keys, models, signed

from mlrepro import load_bundle


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("swap_cli")


@pytest.fixture(scope="module")
def m(base: Path) -> dict[str, Path]:
    return models(base)


@pytest.fixture(scope="module")
def k(base: Path) -> dict[str, Path]:
    return keys(base)


STREAMS = ("--input", "in", "--output", "out", "--redis", "redis://127.0.0.1:1/0")


@pytest.mark.parametrize("command", ["serve", "stream"])
def test_source_options_are_checked_first(m, tmp_path, command):
    extra = STREAMS if command == "stream" else ("--port", "0")
    cases = [
        ((str(m["a"]), "--registry", str(tmp_path), "--alias", "p"), "not both"),
        (("--registry", str(tmp_path)), "go together"),
        ((), "pass a bundle file, or --registry"),
        (("--registry", str(tmp_path), "--alias", "p", "--expect", "b3:00"), "--expect pins"),
    ]
    for args, message in cases:
        r = run_cli(command, *args, *extra)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr


@pytest.mark.parametrize("command", ["serve", "stream"])
def test_an_unsigned_bundle_never_serves_under_trust(m, k, command):
    extra = STREAMS if command == "stream" else ("--port", "0")
    r = run_cli(command, str(m["a"]), "--trust", f"{k['me']}.pub", *extra)
    assert r.returncode == 4
    assert "is not signed" in r.stderr and "listening" not in r.stderr


@pytest.mark.parametrize("command", ["serve", "stream"])
def test_an_alias_whose_bundle_is_untrusted_never_serves(m, k, tmp_path, command):
    registry = tmp_path / "r"
    other = signed(m["a"], k["other"], tmp_path / "other.mlrepro")
    assert (
        run_cli("publish", str(other), "--registry", str(registry), "--alias", "p").returncode == 0
    )
    extra = STREAMS if command == "stream" else ("--port", "0")
    args = ("--registry", str(registry), "--alias", "p", "--trust", f"{k['me']}.pub")
    r = run_cli(command, *args, *extra)
    assert r.returncode == 4 and "another key" in r.stderr
    r = run_cli(command, "--registry", str(registry), "--alias", "q", *extra)
    assert r.returncode == 2 and "alias 'q' does not exist" in r.stderr
    r = run_cli(command, "--registry", str(registry), "--alias", "p", "--poll", "0", *extra)
    assert r.returncode == 2 and "--poll 0" in r.stderr


def test_a_stream_on_a_trusted_alias_gets_as_far_as_redis(m, k, tmp_path):
    registry = tmp_path / "r"
    good = signed(m["a"], k["me"], tmp_path / "good.mlrepro")
    assert (
        run_cli("publish", str(good), "--registry", str(registry), "--alias", "p").returncode == 0
    )
    r = run_cli("stream", "--registry", str(registry), "--alias", "p", "--trust", f"{k['me']}.pub",
            *STREAMS)  # fmt: skip
    assert r.returncode == 5 and "cannot reach Redis" in r.stderr  # the model was accepted
    assert load_bundle(good, trusted_keys=[f"{k['me']}.pub"]).fingerprint
