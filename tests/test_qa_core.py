"""Regressions found by QA on new data sets and mistakes a new user makes (core pipeline)."""

from __future__ import annotations

import pytest
from cli_helpers import run_cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "No such command"),
        (["run", "--nosuch"], "No such option"),
        (["verify", "--rtol"], "requires an argument"),
    ],
)
def test_usage_errors_are_exit_2_not_internal(capsys, args, message) -> None:
    result = run_cli(capsys, *args)
    assert result.code == 2, result.err
    assert message in result.err
    assert "bug in mlrepro" not in result.err
