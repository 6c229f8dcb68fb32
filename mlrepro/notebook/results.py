"""Result objects of the notebook API: rich HTML in Jupyter (``_repr_html_``), text elsewhere.

Every value shown comes from the project's lock or a verification and is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from mlrepro.report.html import badge


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    head = "".join(f"<th style='text-align:left'>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class RunResult:
    """What ``Project.run`` did: one entry per stage (``ran`` or ``skipped``)."""

    project: str
    stages: list[Any]

    @property
    def exit_code(self) -> int:
        return 0

    @property
    def ran(self) -> list[str]:
        return [s.stage for s in self.stages if s.status == "ran"]

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "stages": [s.to_dict() for s in self.stages]}

    def __str__(self) -> str:
        lines = [f"run {self.project}: {len(self.ran)} stage(s) ran"]
        for s in self.stages:
            fp = dict(next(iter(s.outputs.values()), {})).get("fingerprint", "")
            why = f" ({s.reason})" if s.reason else ""
            lines.append(f"  {s.stage:<9} {s.status:<8} {str(fp)[:15]}{why}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = []
        for s in self.stages:
            fp = dict(next(iter(s.outputs.values()), {})).get("fingerprint", "")
            took = f"{s.duration_s:.2f} s" if s.status == "ran" else ""
            rows.append(
                (
                    f"<b>{_e(s.stage)}</b>",
                    _e(s.status),
                    f"<code>{_e(str(fp)[:15])}</code>",
                    _e(took),
                    _e(s.reason),
                )
            )
        return (
            f"<div><b>run {_e(self.project)}</b>: {len(self.ran)} stage(s) ran"
            + _table(("stage", "status", "fingerprint", "time", "reason"), rows)
            + "</div>"
        )


@dataclass
class StatusResult:
    """``Project.status``: up to date / stale (and why) / missing, per stage."""

    project: str
    states: list[Any]

    @property
    def up_to_date(self) -> bool:
        return all(s.state == "up to date" for s in self.states)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "stages": [
                {"stage": s.stage, "state": s.state, "reason": s.reason} for s in self.states
            ],
        }

    def __str__(self) -> str:
        lines = [f"status {self.project}"]
        lines += [f"  {s.stage:<9} {s.state:<11} {s.reason}" for s in self.states]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colors = {"up to date": "#2e7d32", "stale": "#f9a825", "missing": "#c62828"}
        rows = [
            (
                f"<b>{_e(s.stage)}</b>",
                f"<span style='color:{colors.get(s.state, '#555')}'>{_e(s.state)}</span>",
                _e(s.reason),
            )
            for s in self.states
        ]
        return (
            f"<div><b>status {_e(self.project)}</b>"
            + _table(("stage", "state", "reason"), rows)
            + "</div>"
        )


@dataclass
class VerifyResult:
    """``Project.verify``: the verdict per stage; ``exit_code`` is the CLI's (0, 1 or 4)."""

    report: Any  # mlrepro.verify.session.Report
    manifest: Any = field(repr=False, default=None)

    @property
    def exit_code(self) -> int:
        return self.report.exit_code

    @property
    def reproduced(self) -> bool:
        return self.report.exit_code == 0

    @property
    def cause(self) -> str | None:
        return self.report.cause

    @property
    def stages(self) -> list[Any]:
        return self.report.stages

    def to_dict(self) -> dict[str, Any]:
        return self.report.to_dict()

    def html(self) -> str:
        """The full self-contained HTML report of this verification (with plots)."""
        from mlrepro import report

        return report.build(self.manifest, self.report, "html")

    def markdown(self) -> str:
        from mlrepro import report

        return report.build(self.manifest, self.report, "markdown")

    def __str__(self) -> str:
        r = self.report
        head = "reproduced" if self.reproduced else f"not reproduced (cause: {r.cause})"
        lines = [f"verify {r.project}: {head}"]
        for s in r.stages:
            lines.append(f"  {s.stage:<9} {s.verdict}")
            lines += [f"      - {reason}" for reason in s.reasons]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        r = self.report
        rows = []
        for s in r.stages:
            reasons = "<br>".join(_e(x) for x in [*s.reasons, *s.notes]) or "-"
            rows.append((f"<b>{_e(s.stage)}</b>", badge(s.verdict), reasons))
        verdict = "reproduced" if self.reproduced else "not reproduced"
        cause = f" &mdash; first diverging stage: <b>{_e(r.cause)}</b>" if r.cause else ""
        return (
            f"<div><b>verify {_e(r.project)}</b> {badge(verdict)}{cause}"
            + _table(("stage", "verdict", "reasons"), rows)
            + "</div>"
        )


@dataclass
class BundleResult:
    """``Project.bundle``: the bundle file and its fingerprints."""

    path: str
    fingerprint: str
    model_fingerprint: str
    project: str
    size: int

    def load(self) -> Any:
        """The bundle, verified and loaded (``mlrepro.load_bundle``), pinned to this file."""
        from mlrepro.delivery.api import load_bundle

        return load_bundle(self.path, expect_fingerprint=self.fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.path,
            "fingerprint": self.fingerprint,
            "model_fingerprint": self.model_fingerprint,
            "project": self.project,
            "size": self.size,
        }

    def __str__(self) -> str:
        return (
            f"bundle {self.project} -> {self.path} ({self.size} bytes)\n"
            f"  bundle fingerprint {self.fingerprint}\n"
            f"  model fingerprint  {self.model_fingerprint}"
        )

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = [
            ("file", f"<code>{_e(self.path)}</code> ({self.size:,} bytes)"),
            ("bundle fingerprint", f"<code>{_e(self.fingerprint)}</code>"),
            ("model fingerprint", f"<code>{_e(self.model_fingerprint)}</code>"),
        ]
        return f"<div><b>bundle {_e(self.project)}</b>" + _table(("", ""), rows) + "</div>"
