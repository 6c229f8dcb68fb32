"""How ``mlrepro verify`` looks on a terminal: a verdict table, then what differs and why."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape as _escape
from rich.table import Table

from mlrepro.guards.safe_text import printable
from mlrepro.verify.verdicts import NEVER_RECORDED, SKIPPED


def escape(text: str) -> str:
    """Text from the lock or an artifact, safe as rich markup and on a terminal."""
    return _escape(printable(text))


COLORS = {
    NEVER_RECORDED: "red",
    "identical": "green",
    "equivalent": "cyan",
    "different": "red",
    "source changed": "magenta",
    "tampered": "bold red",
    SKIPPED: "yellow",
}


MAIN_OUTPUT = {
    "extract": "snapshot",
    "features": "matrix",
    "select": "selector",
    "train": "pipeline",
    "predict": "predictions",
}


def summary(stage: Any) -> str:
    """One line for the table: the fingerprint, the size of a difference, or the first reason."""
    if stage.verdict == "identical":
        main = stage.outputs.get(MAIN_OUTPUT[stage.stage], {})
        return f"fingerprint {(main.get('recorded') or '')[:15]}"
    if stage.keys:
        counts = [f"{len(v)} {k}" for k, v in stage.keys.items() if v]
        return "rows: " + ", ".join(counts)
    if stage.verdict == "equivalent" and stage.stats.differing:
        s = stage.stats
        return f"{s.differing} value(s) differ, max abs diff {s.max_abs:.3g}"
    if stage.verdict == "tampered":
        names = [n for n, o in stage.outputs.items() if o.get("artifact") == "tampered"]
        return f"recorded artifact modified: {', '.join(names) or 'snapshot'}"
    reasons = [r for r in stage.reasons if not r.startswith(("the source returns", "the lock"))]
    params = [r for r in reasons if r.startswith("parameter ")]
    first = params or reasons or stage.reasons
    return first[0] if first else ""


def render(report: Any, console: Console | None = None) -> None:
    """Print the report: table first, then a section per stage that is not identical."""
    out = console or Console(highlight=False, soft_wrap=True)
    if report.only:
        mode = f"stage {report.only} alone, fed the recorded upstream outputs"
    elif report.offline:
        mode = "offline, from the recorded snapshot"
    else:
        mode = f"source re-queried as of {report.as_of}"
    title = f"verify {report.project} ({mode})"
    table = Table(title=escape(title), title_justify="left")
    table.add_column("stage", no_wrap=True, min_width=8)
    table.add_column("verdict", no_wrap=True, min_width=14)
    table.add_column("summary", overflow="ellipsis", no_wrap=True)
    for s in report.stages:
        color = COLORS.get(s.verdict, "white")
        table.add_row(escape(s.stage), f"[{color}]{escape(s.verdict)}[/]", escape(summary(s)))
    out.print(table)
    for s in report.stages:
        if s.verdict == "identical" and not s.notes:
            continue
        out.print(f"\n[bold]{s.stage}[/]: [{COLORS.get(s.verdict, 'white')}]{s.verdict}[/]")
        for reason in s.reasons:
            out.print(f"  - {escape(reason)}")
        for note in s.notes:
            out.print(f"  [dim]note: {escape(note)}[/]")
        if s.verdict != "identical" and (s.causes or s.environment):
            out.print("  [yellow]environment:[/] " + escape(environment_line(s)))
    for line in getattr(report, "warnings", []):
        out.print(f"\n[yellow]library warning:[/] {escape(line)}")
    for item in report.audit:
        out.print(
            f"\n[yellow]audit:[/] {escape(item['where'])} ({escape(item['class'])}): "
            f"{escape(item['problem'])}; {escape(item['fix'])}"
        )
    out.print()
    if report.cause:
        out.print(
            f"[bold red]not reproduced[/]: '{escape(report.cause)}' is the first stage that "
            "diverged"
        )
        cause = next(s for s in report.stages if s.stage == report.cause)
        out.print(f"  [yellow]hint:[/] {escape(hint_for(cause))}")
        out.print("  [dim]differences read recorded -> reproduced[/]")
    else:
        counts: dict[str, int] = {}
        for s in report.stages:
            counts[s.verdict] = counts.get(s.verdict, 0) + 1
        out.print("[bold green]reproduced[/]: " + ", ".join(f"{n} {v}" for v, n in counts.items()))


def environment_line(stage: Any) -> str:
    """The environment differences that can explain a stage, then how many others there are."""
    rest = len(stage.environment) - len(stage.causes)
    if stage.causes:
        text = "differs from the recording in what can explain this: " + "; ".join(stage.causes[:6])
        if len(stage.causes) > 6:
            text += f"; ... ({len(stage.causes)} in all)"
        if rest > 0:
            text += f" (and {rest} unrelated difference(s): mlrepro env diff)"
        return text
    return (
        f"{len(stage.environment)} difference(s) from the recording, none in a package this "
        "stage uses, its numerics libraries or the CPU (mlrepro env diff lists them)"
    )


def hint_for(stage: Any) -> str:
    """What to do about the stage that diverged first."""
    if stage.verdict == "tampered":
        return (
            "restore the file from where the project was recorded, or rebuild it with "
            "'mlrepro run --force'"
        )
    if stage.verdict == NEVER_RECORDED:
        return (
            f"'{stage.stage}' has no record in mlrepro.lock: run 'mlrepro run' until every "
            "stage succeeds (fix the error it reports), then commit the new lock"
        )
    if stage.verdict == "source changed" and stage.stage == "extract":
        # 'mlrepro run' would skip extract: its key (query, as_of, parameters) is unchanged
        # and the recorded snapshot *is* the record of that as_of. Only a forced extract
        # re-queries.
        return (
            "rows at or before as_of were back-filled, edited or deleted in the database: "
            "restore them, or re-query and record a new snapshot with 'mlrepro extract "
            "--force', then 'mlrepro run' to rebuild the stages after it, and commit the new "
            "lock"
        )
    if stage.verdict == "source changed":
        return "the prediction input changed: restore it, or re-run 'mlrepro predict'"
    if any(r.startswith(("parameter ", "the lock record", "stale lock")) for r in stage.reasons):
        return (
            "mlrepro.yaml and mlrepro.lock disagree: restore them from version control, or "
            "record the manifest with 'mlrepro run' and commit the new lock"
        )
    return (
        "the same inputs and parameters gave another result: look at the environment "
        "differences and the seed audit above ('mlrepro env recreate DIR' builds the "
        "recorded environment to verify in)"
    )


class Spinner:
    """'verifying <stage>' on a terminal (stderr); silent elsewhere."""

    def __init__(self) -> None:
        import sys

        self.status: Any = None
        if sys.stderr.isatty():
            self.status = Console(stderr=True).status("verifying")

    def __enter__(self) -> Spinner:
        if self.status is not None:
            self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.stop()

    def __call__(self, stage: str) -> None:
        if self.status is not None:
            self.status.update(f"verifying {stage}")
