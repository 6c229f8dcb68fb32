"""Human-facing output: stage lines, tables, progress bars (on a terminal only)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from mlrepro.errors import MlreproError
from mlrepro.guards.safe_text import printable


def short(fp: str | None) -> str:
    return (fp or "")[:15]


def safe(text: object) -> str:
    """Text from an artifact, lock, bundle or message: no control sequences, no markup."""
    from rich.markup import escape  # messages hold brackets: "pip install 'mlrepro[postgres]'"

    return escape(printable(text))


def echo(text: object = "", err: bool = False) -> None:
    """Plain (non-rich) output, sanitised: everything printed from an artifact goes here."""
    stream = sys.stderr if err else sys.stdout
    stream.write(printable(text) + "\n")


def _rich(stderr: bool = False) -> Any:
    from rich.console import Console as RichConsole  # imported only when something prints

    return RichConsole(stderr=stderr, highlight=False, soft_wrap=True)


def print_error(exc: MlreproError) -> None:
    err = _rich(stderr=True)
    err.print(f"[bold red]error:[/] {safe(exc.message)}", markup=True, emoji=False)
    if exc.hint:
        err.print(f"  [yellow]hint:[/] {safe(exc.hint)}", markup=True, emoji=False)


class Console:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._out: Any = None
        self._err: Any = None
        self._progress: Any = None

    @property
    def out(self) -> Any:
        if self._out is None:
            self._out = _rich()
        return self._out

    @property
    def err(self) -> Any:
        if self._err is None:
            self._err = _rich(stderr=True)
        return self._err

    def _print(self, text: str) -> None:
        if not self.quiet:  # markup is ours; every value in it went through safe()
            self.out.print(printable(text), markup=True, emoji=False)

    # ------------------------------------------------------------------ runner events
    def report(self, event: str, stage: str, payload: Any = None) -> None:
        if event == "skip":
            self._print(f"[dim]{stage:<9}[/] unchanged, skipped")
        elif event == "start":
            self._stop_progress()
        elif event == "done":
            self._stop_progress()
            outs = payload.outputs
            main: dict[str, Any] = next(iter(outs.values()), {})
            size = ""
            if "rows" in main:
                size = safe(f"{main['rows']} rows")
                if "columns" in main:
                    size += safe(f" x {main['columns']} cols")
            extra = ""
            metrics = payload.details.get("metrics")
            if metrics:
                extra = "  " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            if stage == "select":
                extra = f"  {payload.details['count']} features"
            why = f" [dim]({safe(payload.reason)})[/]" if payload.reason else ""
            self._print(
                f"[green]{stage:<9}[/] ran in {payload.duration_s:.2f}s  {size}{extra}  "
                f"[dim]{safe(short(main.get('fingerprint')))}[/]{why}"
            )
            for warning in payload.details.get("warnings", []) or []:
                self.report("warn", stage, warning)
        elif event == "warn":
            self.err.print(f"[yellow]warning:[/] {safe(payload)}", markup=True, emoji=False)

    def progress(self, stage: str, total: int | None = None) -> Callable[[int], None] | None:
        """A row counter on a terminal; None elsewhere (CI logs stay clean)."""
        if self.quiet or not sys.stderr.isatty():
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._stop_progress()
        self._progress = Progress(
            TextColumn(f"{stage} rows"),
            BarColumn(),
            MofNCompleteColumn(),
            console=self.err,
            transient=True,
        )
        task = self._progress.add_task(stage, total=total)
        self._progress.start()
        return lambda n: self._progress.advance(task, n) if self._progress else None

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # ------------------------------------------------------------------ summaries
    def summary(self, results: list[Any]) -> None:
        self._stop_progress()
        ran = sum(r.status == "ran" for r in results)
        self._print(
            f"[bold]{ran} stage(s) ran, {len(results) - ran} unchanged[/]; lock: mlrepro.lock"
        )

    def status(self, manifest: Any, states: list[Any]) -> None:
        from rich.table import Table

        table = Table(title=safe(manifest.name))
        table.add_column("stage")
        table.add_column("state")
        table.add_column("reason")
        colors = {"up to date": "green", "stale": "yellow", "missing": "red"}
        for s in states:
            color = colors.get(s.state, "white")
            table.add_row(safe(s.stage), f"[{color}]{safe(s.state)}[/]", safe(s.reason))
        self.out.print(table)

    def predict_summary(self, summary: dict[str, Any]) -> None:
        self._stop_progress()
        line = f"predicted {summary['predicted']} of {summary['rows']} rows"
        if summary["rejected"]:
            line += f", rejected {summary['rejected']}"
        self._print(
            f"{line} -> {safe(summary['output'])}  "
            f"[dim]model {safe(short(summary['model_fingerprint']))}[/]"
        )
