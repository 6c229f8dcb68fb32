"""The report as Markdown, for a pull-request comment (GitHub / GitLab flavoured tables)."""

from __future__ import annotations

from typing import Any

from mlrepro.report.collect import ReportData

ICONS = {
    "identical": "✅",
    "equivalent": "🟦",
    "different": "❌",
    "source changed": "⚠️",
    "tampered": "⛔",
    "skipped": "⏭️",
}


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    for ch in ("\\", "|", "`", "<", ">", "*", "_", "[", "]"):
        text = text.replace(ch, "\\" + ch)
    return " ".join(text.split())


def render_markdown(data: ReportData) -> str:
    src = data.source
    lines = [f"## mlrepro report: {_cell(data.project)} ({_cell(data.verdict)})", ""]
    metrics = ", ".join(f"{_cell(k)} {v:.4g}" for k, v in data.metrics.items()) or "-"
    lines += [
        f"**{_cell(data.estimator)}** ({_cell(data.task)}) predicting **{_cell(data.target)}**, "
        f"trained on {_cell(src.get('rows'))} rows as of {_cell(src.get('as_of'))} "
        f"({_cell(data.train_rows)} train / {_cell(data.test_rows)} held out): {metrics}",
        "",
    ]
    rep = data.verify
    if rep is not None:
        lines += ["| stage | verdict | reasons |", "| --- | --- | --- |"]
        for s in rep.stages:
            reasons = "<br>".join(_cell(r) for r in [*s.reasons, *s.notes][:8]) or "-"
            icon = ICONS.get(s.verdict, "")
            lines.append(f"| {_cell(s.stage)} | {icon} {_cell(s.verdict)} | {reasons} |")
        lines.append("")
        if rep.cause:
            lines.append(
                f"**Not reproduced**: `{_cell(rep.cause)}` is the first stage that diverged."
            )
        else:
            lines.append("**Reproduced**: every stage identical, equivalent or skipped.")
        lines.append("")
        for s in rep.stages:
            if s.deltas:
                big = max(abs(d) for d in s.deltas)
                lines.append(
                    f"- {_cell(s.stage)}: {len(s.deltas)} prediction value(s) compared, "
                    f"max |reproduced - recorded| {big:.3g}"
                )
        for item in rep.audit:
            lines.append(f"- seed audit: {_cell(item.get('where'))}: {_cell(item.get('problem'))}")
    else:
        lines += ["_not verified (no re-execution for this report)_", ""]
    lines += ["", "| stage | output | fingerprint | rows |", "| --- | --- | --- | --- |"]
    for stage in data.stages:
        for name, out in stage.outputs.items():
            fp = str(out.get("fingerprint") or "")[:19]
            lines.append(
                f"| {_cell(stage.name)} | {_cell(name)} | `{_cell(fp)}` | "
                f"{_cell(out.get('rows', ''))} |"
            )
    env = []
    if rep is not None:
        env = sorted({d for s in rep.stages for d in s.environment})
    else:
        env = data.environment
    if env:
        lines += ["", "<details><summary>environment differences (recorded -> now)</summary>", ""]
        lines += [f"- {_cell(d)}" for d in env]
        lines += ["", "</details>"]
    for note in data.notes:
        lines += ["", f"_{_cell(note)}_"]
    return "\n".join(lines) + "\n"
