"""The report as one self-contained HTML page: inline CSS and SVG, no script, no network.

A Content-Security-Policy meta tag forbids every fetch (``default-src 'none'``), so a page
opened offline looks exactly like one opened online, and text from an untrusted lock
(every value is HTML-escaped) cannot pull anything in.
"""

from __future__ import annotations

import base64
import json
from html import escape
from typing import Any

from mlrepro.pipeline.registry import STAGES
from mlrepro.report.collect import ReportData, StageNode

COLORS = {
    "identical": "#2e7d32",
    "equivalent": "#00838f",
    "different": "#c62828",
    "source changed": "#8e24aa",
    "tampered": "#b71c1c",
    "skipped": "#f9a825",
    "reproduced": "#2e7d32",
    "not reproduced": "#c62828",
    "not verified": "#757575",
}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
background:#fafafa}
header{background:#263238;color:#fff;padding:18px 32px}
header h1{margin:0 0 4px;font-size:1.5em}
main{padding:8px 32px 40px;max-width:1200px}
section{background:#fff;border:1px solid #e0e0e0;border-radius:6px;margin:16px 0;
padding:12px 20px}
h2{font-size:1.2em;border-bottom:1px solid #eee;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:.92em}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5}
code,.fp{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}
.plots{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;border:1px solid #eee;padding:8px;background:#fff}
figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:.85em;color:#555;max-width:520px}
.note{color:#666;font-size:.9em}
ul.reasons{margin:4px 0 4px 18px;padding:0}
pre{background:#f5f5f5;padding:8px;overflow-x:auto;white-space:pre-wrap}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def badge(verdict: str) -> str:
    color = COLORS.get(verdict, "#757575")
    style = f"background:{color};color:#fff;padding:1px 9px;border-radius:9px;font-weight:600"
    return f'<span class="badge" style="{style}">{_e(verdict)}</span>'


def _short(fp: Any) -> str:
    return _e(str(fp or "")[:15])


def _json(value: Any) -> str:
    try:
        text = json.dumps(value, indent=1, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = str(value)
    return _e(text[:4000])


def lineage_svg(data: ReportData) -> str:
    """The stages as boxes (source first), arrows for every recorded input."""
    names = ["source", *(s.name for s in data.stages)]
    w, h, gap, top = 150, 58, 40, 70
    xs = {n: 10 + i * (w + gap) for i, n in enumerate(names)}
    verdicts = {s.stage: s.verdict for s in data.verify.stages} if data.verify else {}
    width = 20 + len(names) * (w + gap) - gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + h + 20}" '
        f'viewBox="0 0 {width} {top + h + 20}" role="img" aria-label="pipeline lineage">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#555"/>'
        "</marker></defs>",
    ]
    edges: list[tuple[str, str]] = [("source", "extract")] if "extract" in xs else []
    for stage in data.stages:
        for up, _ in (STAGES[stage.name].inputs if stage.name in STAGES else {}).values():
            if up in xs:
                edges.append((up, stage.name))
    for up, down in dict.fromkeys(edges):
        x1, x2 = xs[up] + w, xs[down]
        y = top + h / 2
        if names.index(down) - names.index(up) == 1:
            parts.append(
                f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#555" '
                'marker-end="url(#arrow)"/>'
            )
        else:  # skip over the boxes in between
            a, b = xs[up] + w / 2, xs[down] + w / 2
            lift = 20 + 12 * (names.index(down) - names.index(up))
            parts.append(
                f'<path d="M{a},{top} C{a},{top - lift} {b},{top - lift} {b},{top}" '
                'fill="none" stroke="#888" stroke-dasharray="4 3" marker-end="url(#arrow)"/>'
            )
    by_name = {s.name: s for s in data.stages}
    for n in names:
        x = xs[n]
        color = COLORS.get(verdicts.get(n, ""), "#90a4ae")
        if n == "source":
            label = f"{data.source.get('rows') or '?'} rows as of"
            sub = str(data.source.get("as_of") or "")[:20]
        else:
            outs = by_name[n].outputs
            main = next(iter(outs.values()), {}) if outs else {}
            label = verdicts.get(n, "recorded")
            sub = str(main.get("fingerprint") or "")[:15]
        parts.append(
            f'<rect x="{x}" y="{top}" width="{w}" height="{h}" rx="6" fill="#fff" '
            f'stroke="{color}" stroke-width="2.5"/>'
            f'<text x="{x + w / 2}" y="{top + 18}" text-anchor="middle" font-weight="bold" '
            f'font-size="13" font-family="sans-serif">{_e(n)}</text>'
            f'<text x="{x + w / 2}" y="{top + 34}" text-anchor="middle" font-size="11" '
            f'fill="{color}" font-family="sans-serif">{_e(label)}</text>'
            f'<text x="{x + w / 2}" y="{top + 49}" text-anchor="middle" font-size="10" '
            f'font-family="monospace" fill="#555">{_e(sub)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _stage_rows(stage: StageNode) -> str:
    inputs = "<br>".join(
        f"{_e(k)} <span class='fp'>{_short(v)}</span>" for k, v in stage.inputs.items()
    )
    outputs = "<br>".join(
        f"{_e(k)} <span class='fp' title='{_e(v.get('fingerprint'))}'>"
        f"{_short(v.get('fingerprint'))}</span>"
        + (f" ({_e(v['rows'])} rows)" if isinstance(v.get("rows"), int) else "")
        for k, v in stage.outputs.items()
    )
    took = f"{stage.duration_s:.2f} s" if stage.duration_s is not None else ""
    return (
        f"<tr><td><b>{_e(stage.name)}</b><br><span class='note'>{_e(stage.started_at)}"
        f"<br>{_e(took)}</span></td><td>{inputs or '-'}</td>"
        f"<td><details><summary>{len(stage.params)} parameter(s)</summary>"
        f"<pre>{_json(stage.params)}</pre></details></td><td>{outputs}</td></tr>"
    )


def _summary(data: ReportData) -> str:
    src = data.source
    rows = [
        (
            "model",
            f"<code>{_e(data.estimator)}</code> ({_e(data.task)}) predicting "
            f"<code>{_e(data.target)}</code>",
        ),
        (
            "trained on",
            f"{_e(src.get('rows'))} rows of <code>{_e(src.get('url'))}</code> "
            f"as of {_e(src.get('as_of'))} ({_e(data.train_rows)} train / "
            f"{_e(data.test_rows)} held out)",
        ),
        ("how well", ", ".join(f"{_e(k)} = {v:.4g}" for k, v in data.metrics.items()) or "-"),
        ("reproduced", badge(data.verdict)),
    ]
    for what, fp in data.fingerprints.items():
        rows.append((f"{what} fingerprint", f"<span class='fp'>{_e(fp)}</span>"))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<section id="summary"><h2>Summary</h2><table>{body}</table></section>'


def _lineage(data: ReportData) -> str:
    src = data.source
    query = f"<pre>{_e(src.get('query'))}</pre>"
    order = ", ".join(_e(c) for c in src.get("order_by") or [])
    rows = "".join(_stage_rows(s) for s in data.stages)
    return (
        '<section id="lineage"><h2>Lineage</h2>'
        f'<div style="overflow-x:auto">{lineage_svg(data)}</div>'
        f"<p>source <code>{_e(src.get('url'))}</code>, timestamp column "
        f"<code>{_e(src.get('timestamp_column'))}</code> &le; as_of "
        f"<b>{_e(src.get('as_of'))}</b>, ordered by {order or '-'}, "
        f"{_e(src.get('rows'))} rows</p>{query}"
        "<table><tr><th>stage</th><th>inputs</th><th>parameters</th><th>outputs</th></tr>"
        f"{rows}</table></section>"
    )


def _verification(data: ReportData) -> str:
    rep = data.verify
    if rep is None:
        hint = (
            "this report was made from a bundle"
            if data.origin == "bundle"
            else "run 'mlrepro report' without --no-verify, or 'mlrepro verify --report FILE'"
        )
        return (
            '<section id="verify"><h2>Verification</h2>'
            f"<p>{badge('not verified')} not re-executed for this report ({_e(hint)}).</p>"
            "</section>"
        )
    mode = (
        "offline, from the recorded snapshot"
        if rep.offline
        else (f"source re-queried as of {rep.as_of}")
    )
    rows = []
    for s in rep.stages:
        reasons = "".join(f"<li>{_e(r)}</li>" for r in s.reasons)
        notes = "".join(f"<li class='note'>note: {_e(n)}</li>" for n in s.notes)
        env = ""
        if s.environment and s.verdict != "identical":
            env = f"<li class='note'>environment: {_e('; '.join(s.environment))}</li>"
        items = reasons + notes + env
        rows.append(
            f"<tr><td><b>{_e(s.stage)}</b></td><td>{badge(s.verdict)}</td>"
            f"<td>{'<ul class=reasons>' + items + '</ul>' if items else '-'}</td>"
            f"<td>{s.duration_s:.2f} s</td></tr>"
        )
    cause = (
        f"<p><b>not reproduced</b>: '{_e(rep.cause)}' is the first stage that diverged "
        "(differences read recorded &rarr; reproduced)</p>"
        if rep.cause
        else "<p><b>reproduced</b>: every stage identical, equivalent or skipped</p>"
    )
    audit = "".join(
        f"<li>{_e(a.get('where'))} ({_e(a.get('class'))}): {_e(a.get('problem'))}; "
        f"{_e(a.get('fix'))}</li>"
        for a in rep.audit
    )
    return (
        f'<section id="verify"><h2>Verification {badge(data.verdict)}</h2>'
        f"<p class='note'>{_e(mode)}; tolerance rtol {rep.tolerance.rtol:g}, "
        f"atol {rep.tolerance.atol:g}</p>{cause}"
        "<table><tr><th>stage</th><th>verdict</th><th>reasons</th><th>time</th></tr>"
        f"{''.join(rows)}</table>"
        + (f"<h3>Seed audit</h3><ul>{audit}</ul>" if audit else "")
        + "</section>"
    )


def _metrics(data: ReportData) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{v:.6g}</td></tr>" for k, v in data.metrics.items())
    imp = "".join(
        f"<tr><td>{_e(n)}</td><td>{m:.4g}</td><td>{s:.3g}</td></tr>"
        for n, m, s in data.importance[:20]
    )
    return (
        '<section id="metrics"><h2>Metrics</h2>'
        f"<p class='note'>on the {_e(data.test_rows)} held-out rows</p>"
        f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>"
        + (
            "<table><tr><th>feature</th><th>permutation importance</th><th>std</th></tr>"
            f"{imp}</table>"
            if imp
            else ""
        )
        + "</section>"
    )


def _plots(data: ReportData) -> str:
    figures = "".join(
        "<figure>"
        f'<img alt="{_e(p.title)}" src="data:image/svg+xml;base64,'
        f'{base64.b64encode(p.svg.encode("utf-8")).decode("ascii")}">'
        f"<figcaption><b>{_e(p.title)}</b>. {_e(p.caption)}</figcaption></figure>"
        for p in data.plots
    )
    notes = "".join(f"<p class='note'>{_e(n)}</p>" for n in data.notes)
    return f'<section id="plots"><h2>Plots</h2>{notes}<div class="plots">{figures}</div></section>'


def _environment(data: ReportData) -> str:
    per_stage = []
    if data.verify is not None:
        for s in data.verify.stages:
            if s.environment:
                per_stage.append((s.stage, s.environment))
    elif data.environment:
        per_stage.append(("train", data.environment))
    if not per_stage:
        body = "<p>no differences between the recorded environment and this one</p>"
    else:
        body = "".join(
            f"<h3>{_e(stage)}</h3><ul>"
            + "".join(f"<li><code>{_e(d)}</code></li>" for d in diffs)
            + "</ul>"
            for stage, diffs in per_stage
        )
    return (
        '<section id="environment"><h2>Environment</h2>'
        "<p class='note'>differences read recorded &rarr; this machine</p>"
        f"{body}</section>"
    )


def render_html(data: ReportData) -> str:
    """The whole page."""
    title = f"mlrepro report: {data.project}"
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{_e(data.project)} {badge(data.verdict)}</h1>"
        f"<div>mlrepro {_e(data.mlrepro_version)} report, generated {_e(data.generated_at)} "
        f"from the {_e(data.origin)}</div></header><main>"
        + _summary(data)
        + _lineage(data)
        + _verification(data)
        + _metrics(data)
        + _plots(data)
        + _environment(data)
        + "</main></body></html>\n"
    )
