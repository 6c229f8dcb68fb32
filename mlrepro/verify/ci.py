"""verify's result in the formats CI systems read natively: JUnit XML and GitHub annotations.

JUnit: one ``<testcase>`` per stage. ``different``, ``source changed`` and ``tampered`` are
failures whose text is the reasons; ``skipped`` is skipped; ``identical`` and
``equivalent`` pass (the same rule as verify's exit code), with the differences of an
equivalent stage in ``<system-out>``. GitLab, Jenkins and the GitHub test-report actions
read the file as it is.

GitHub: one workflow command per stage (``::error``, ``::warning`` or ``::notice``), which
the Actions runner turns into annotations on the run's summary page.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from typing import Any

from mlrepro.verify.verdicts import FAILED, SKIPPED

_CONTROL = {i: None for i in range(32) if i not in (9, 10, 13)}  # invalid in XML 1.0


def _xml_text(text: object) -> str:
    return str(text).translate(_CONTROL)


def _stage_text(stage: Any) -> str:
    lines = [f"verdict: {stage.verdict}"]
    lines += [f"- {r}" for r in stage.reasons]
    lines += [f"note: {n}" for n in stage.notes]
    for name, out in sorted(stage.outputs.items()):
        lines.append(
            f"{name}: {out.get('recorded')} -> {out.get('reproduced')} "
            f"({out.get('verdict')}, artifact {out.get('artifact')})"
        )
    if stage.environment:
        lines.append("environment (recorded -> now): " + "; ".join(stage.environment))
    return "\n".join(lines)


def junit_xml(report: Any) -> bytes:
    """The report as JUnit XML (UTF-8 bytes with an XML declaration)."""
    stages = list(report.stages)
    failures = sum(s.verdict in FAILED for s in stages)
    skipped = sum(s.verdict == SKIPPED for s in stages)
    total = f"{sum(s.duration_s for s in stages):.3f}"
    name = _xml_text(f"mlrepro verify {report.project}")
    counts = {
        "tests": str(len(stages)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": total,
    }
    root = ET.Element("testsuites", {"name": name, **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": name,
            **counts,
            "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("project", report.project),
        ("reproduced", str(report.exit_code == 0).lower()),
        ("exit_code", str(report.exit_code)),
        ("cause", report.cause or ""),
        ("as_of", report.as_of),
        ("offline", str(report.offline).lower()),
        ("rtol", repr(report.tolerance.rtol)),
        ("atol", repr(report.tolerance.atol)),
    ):
        ET.SubElement(props, "property", {"name": key, "value": _xml_text(value)})
    for s in stages:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": _xml_text(f"mlrepro.verify.{report.project}"),
                "name": s.stage,
                "time": f"{s.duration_s:.3f}",
            },
        )
        text = _xml_text(_stage_text(s))
        first = _xml_text(s.reasons[0] if s.reasons else s.verdict)
        if s.verdict in FAILED:
            failure = ET.SubElement(
                case, "failure", {"message": f"{s.verdict}: {first}", "type": s.verdict}
            )
            failure.text = text
        elif s.verdict == SKIPPED:
            ET.SubElement(case, "skipped", {"message": first})
        out = ET.SubElement(case, "system-out")
        out.text = text
    for item in report.audit:
        line = f"audit: {item['where']} ({item['class']}): {item['problem']}; {item['fix']}"
        ET.SubElement(suite, "system-err").text = _xml_text(line)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(report: Any) -> str:
    """GitHub Actions workflow commands, one per stage plus a closing summary."""
    lines = []
    for s in report.stages:
        level = "error" if s.verdict in FAILED else "notice"
        if s.verdict in ("equivalent", SKIPPED):
            level = "warning" if s.verdict == "equivalent" else "notice"
        body = "\n".join([*s.reasons, *(f"note: {n}" for n in s.notes)]) or s.verdict
        if s.environment and s.verdict != "identical":
            body += "\nenvironment (recorded -> now): " + "; ".join(s.environment)
        title = f"mlrepro verify {report.project}: {s.stage} {s.verdict}"
        lines.append(f"::{level} title={_prop(title)}::{_data(body)}")
    for item in report.audit:
        title = f"mlrepro seed audit: {item['where']}"
        lines.append(
            f"::warning title={_prop(title)}::{_data(item['problem'] + '; ' + item['fix'])}"
        )
    if report.cause:
        summary = f"not reproduced: '{report.cause}' is the first stage that diverged"
        lines.append(f"::error title={_prop('mlrepro verify')}::{_data(summary)}")
    else:
        lines.append(f"::notice title={_prop('mlrepro verify')}::reproduced")
    return "\n".join(lines) + "\n"
