"""The HTML report in a real browser: Debian's headless Chromium, driven by Playwright.

The page is opened from a file with the browser offline and every request other than the
file itself refused (and recorded), so a report that needed the network would show it. No
console message of type error or warning, no page error, every plot decoded, every
section shown. ``.ci/run`` installs Chromium; under ``CI=true`` a missing browser or driver
is a failure, never a skip. ``MLREPRO_SCREENSHOT=docs/report.png`` keeps the screenshot.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cli_helpers import run_cli

CHROMIUM = os.environ.get("MLREPRO_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true but the browser test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    return CHROMIUM


@pytest.mark.slow
def test_report_renders_offline_without_console_errors(capsys, trained, tmp_path, chromium_path):
    from playwright.sync_api import sync_playwright

    report = tmp_path / "report.html"
    res = run_cli("report", "-p", trained["breast_cancer"], "-o", report, "--offline")
    assert res.code == 0, res.err
    url = report.resolve().as_uri()
    messages: list[str] = []
    refused: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a new, empty user data dir
            executable_path=chromium_path,
            headless=True,
            args=FLAGS,
            offline=True,
            viewport={"width": 1280, "height": 900},
        )
        try:

            def route(r):  # noqa: ANN001 - Playwright's Route
                if r.request.url == url:
                    r.continue_()
                else:
                    refused.append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on(
                "console",
                lambda m: (
                    messages.append(f"{m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            response = page.goto(url, wait_until="load")
            assert response is None or response.ok
            assert page.title() == "mlrepro report: breast-cancer-diagnosis"
            headings = page.locator("section h2").all_inner_texts()
            for want in ("Summary", "Lineage", "Verification", "Metrics", "Plots", "Environment"):
                assert any(h.startswith(want) for h in headings), (want, headings)
            assert page.locator("section#lineage svg rect").count() == 6  # source + 5 stages
            plots = page.locator("section#plots img")
            assert plots.count() == 4
            decoded = page.evaluate(
                "() => [...document.images].map(i => i.complete && i.naturalWidth > 0)"
            )
            assert decoded and all(decoded)
            assert page.locator("section#verify .badge").first.inner_text() == "reproduced"
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            keep = os.environ.get("MLREPRO_SCREENSHOT")
            if keep:
                shutil.copyfile(shot, keep)
        finally:
            context.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert refused == []
    assert messages == []
