"""Human-facing output of ``mlrepro verify``: a verdict table, then what differs and why."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .verdicts import FAILED, SKIPPED

COLORS = {
    "identical": "green",
    "equivalent": "cyan",
    "different": "red",
    "source changed": "magenta",
    "tampered": "bold red",
    SKIPPED: "yellow",
}


def _summary(stage: Any) -> str:
    if stage.verdict == "identical":
        fps = [o["recorded"] for o in stage.outputs.values() if o.get("recorded")]
        return f"fingerprint {fps[0][:15]}" if fps else ""
    if stage.verdict == "equivalent" and stage.stats.compared:
        s = stage.stats
        return f"max abs diff {s.max_abs:.3g}, {s.differing} value(s) differ"
    return stage.reasons[0] if stage.reasons else ""


def render(report: Any, console: Console | None = None) -> None:
    """Print the report: table first, then a section per stage that is not identical."""
    out = console or Console(highlight=False, soft_wrap=True)
    mode = (
        "offline, from the recorded snapshot"
        if report.offline
        else (f"source re-queried as of {report.as_of}")
    )
    title = f"verify {report.project} ({mode})"
    table = Table(title=escape(title), title_justify="left")
    table.add_column("stage")
    table.add_column("verdict")
    table.add_column("summary", overflow="ellipsis", no_wrap=True, max_width=90)
    for s in report.stages:
        color = COLORS.get(s.verdict, "white")
        table.add_row(s.stage, f"[{color}]{s.verdict}[/]", escape(_summary(s)))
    out.print(table)
    for s in report.stages:
        if s.verdict == "identical" and not s.notes:
            continue
        out.print(f"\n[bold]{s.stage}[/]: [{COLORS.get(s.verdict, 'white')}]{s.verdict}[/]")
        for reason in s.reasons:
            out.print(f"  - {escape(reason)}")
        for note in s.notes:
            out.print(f"  [dim]note: {escape(note)}[/]")
        if s.environment:
            out.print(
                "  [yellow]hint:[/] the environment differs from the recording: "
                + escape("; ".join(s.environment))
            )
    for item in report.audit:
        out.print(
            f"\n[yellow]audit:[/] {escape(item['where'])} ({escape(item['class'])}): "
            f"{escape(item['problem'])}; {escape(item['fix'])}"
        )
    out.print()
    if report.cause:
        out.print(f"[bold red]not reproduced[/]: '{report.cause}' is the first stage that diverged")
    else:
        verdicts = sorted({s.verdict for s in report.stages if s.verdict not in FAILED})
        out.print(
            f"[bold green]reproduced[/] ({', '.join(verdicts)}; differences read "
            "recorded -> reproduced)"
        )
