"""``mlrepro serve`` / ``mlrepro stream`` command lines: help, usage errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_helpers import run_cli

from .conftest import cli_env


def test_help_lists_the_commands_without_importing_the_servers():
    code = (
        "import sys\n"
        "from mlrepro.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'fastapi', 'uvicorn', 'redis', 'pydantic', 'pandas', 'sklearn', 'starlette'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout and "stream" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("serve", ["--host", "--port", "--workers", "--max-batch", "--expect", "--access-log"]),
        (
            "stream",
            ["--redis", "--input", "--output", "--dead-letter", "--group", "--consumer"]
            + ["--batch", "--block-ms", "--claim-idle-ms", "--max-deliveries", "--start"],
        ),
    ],
)
def test_command_help(command, options):
    code, out, _ = run_cli(command, "--help")
    assert code == 0
    for option in options:
        assert option in out


def test_a_missing_bundle_is_exit_4(tmp_path):
    code, _, err = run_cli("serve", str(tmp_path / "nope.mlrepro"))
    assert code == 4
    assert "nope.mlrepro does not exist" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--workers", "0"], "--workers 0 is not valid"),
        (["serve", "--max-batch", "0"], "--max-batch 0 is not valid"),
        (["serve", "--log-level", "loud"], "--log-level loud is not valid"),
        (["stream", "--input", "a", "--output", "b", "--batch", "0"], "--batch 0 is not valid"),
        (["stream", "--input", "a", "--output", "a"], "must be three different streams"),
        (["stream", "--input", "a", "--output", "b", "--redis", "http://x"], "not a Redis URL"),
    ],
)
def test_usage_errors_are_exit_2(bundles, args, message):
    command, *rest = args
    code, _, err = run_cli(command, str(bundles["breast_cancer"]), *rest)
    assert code == 2, err
    assert message in err
    assert "hint:" in err


def test_an_unreachable_redis_is_exit_5(bundles):
    url = "redis://127.0.0.1:1/0"
    args = ["--redis", url, "--input", "a", "--output", "b"]
    code, _, err = run_cli("stream", str(bundles["breast_cancer"]), *args)
    assert code == 5
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in err
    assert "hint: check --redis" in err
