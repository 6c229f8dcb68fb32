"""Reports for people who are not at a terminal: one self-contained HTML page, or Markdown.

``build`` renders a project's report (lineage, verify verdicts, metrics, plots,
environment); ``from_bundle`` the report of a ``.mlrepro`` bundle (for ``mlrepro serve``).
Sits above ``verify`` and ``delivery``, below ``serving`` and ``cli``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlrepro.errors import UsageError

FORMATS = ("html", "markdown")


def render(data: Any, fmt: str = "html") -> str:
    """Render collected ``ReportData`` as ``html`` or ``markdown``."""
    if fmt == "html":
        from mlrepro.report.html import render_html

        return render_html(data)
    if fmt == "markdown":
        from mlrepro.report.markdown import render_markdown

        return render_markdown(data)
    raise UsageError(f"unknown report format '{fmt}'", hint=f"use one of: {', '.join(FORMATS)}")


def format_for(path: Path | None, fmt: str | None) -> str:
    """The format asked for, or the one a file name implies (.md: markdown, else html)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(
                f"unknown report format '{fmt}'",
                hint=f"use --format {' or --format '.join(FORMATS)}",
            )
        return fmt
    if path is not None and path.suffix.lower() in (".md", ".markdown"):
        return "markdown"
    return "html"


def build(manifest: Any, verify_report: Any = None, fmt: str = "html") -> str:
    """The report of a project (and of a verification of it, when given)."""
    from mlrepro.report.collect import from_project

    fmt = format_for(None, fmt)
    # Markdown shows no plots: skip loading the artifacts and computing them
    return render(from_project(manifest, verify_report, with_plots=fmt == "html"), fmt)


def write(path: Path, text: str) -> None:
    """Write a report atomically (a half-written report never appears)."""
    from mlrepro.core import atomic

    if path.is_dir():
        raise UsageError(f"{path} is a folder", hint="give a file name, e.g. -o report.html")
    if not path.parent.exists():
        raise UsageError(
            f"folder {path.parent} does not exist", hint="create it first, or pick another path"
        )
    atomic.write_bytes(path, text.encode("utf-8"))
