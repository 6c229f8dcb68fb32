"""Report commands: ``mlrepro report``, ``mlrepro export --mlflow`` and verify's CI outputs.

Thin like the rest of the CLI: the work is in ``mlrepro.report``, ``mlrepro.verify.ci`` and
``mlrepro.delivery.mlflow_export``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from mlrepro.errors import UsageError

VERIFY_FORMATS = ("text", "json", "github")


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def output_format(fmt: str | None, as_json: bool) -> str:
    """verify's stdout format: ``--format`` or ``--json`` (not two different ones)."""
    if fmt is None:
        return "json" if as_json else "text"
    if fmt not in VERIFY_FORMATS:
        raise UsageError(
            f"unknown --format '{fmt}'", hint=f"use one of: {', '.join(VERIFY_FORMATS)}"
        )
    if as_json and fmt != "json":
        raise UsageError(f"--json and --format {fmt} disagree", hint="use just one of them")
    return fmt


def _check_file(path: Path | None, option: str) -> None:
    if path is None or str(path) == "-":
        return
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder", hint=f"give a file name to {option}")
    if not path.parent.exists():
        raise UsageError(
            f"{option} {path}: folder {path.parent} does not exist",
            hint="create the folder first, or pick another path",
        )


def check_outputs(report_file: Path | None, junit: Path | None) -> None:
    """Refuse unwritable output paths before the (long) verification starts."""
    for path, option in ((report_file, "--report"), (junit, "--junit")):
        if path is not None and str(path) == "-":
            raise UsageError(
                f"{option} needs a file name ('-' would mix it with verify's output)",
                hint=f"e.g. {option} {'report.html' if option == '--report' else 'verify.xml'}",
            )
    _check_file(report_file, "--report")
    _check_file(junit, "--junit")


def write_outputs(
    manifest: Any, report: Any, report_file: Path | None, junit: Path | None, fmt: str = "text"
) -> None:
    """verify's --junit and --report files (written whatever the verdict); with
    ``--format github`` inside GitHub Actions, the Markdown report on the job's summary page."""
    import os

    from mlrepro.core import atomic

    summary = os.environ.get("GITHUB_STEP_SUMMARY", "").strip()
    if fmt == "github" and summary:
        from mlrepro import report as reports

        text = reports.build(manifest, report, "markdown") + "\n"
        try:
            with open(summary, "a", encoding="utf-8") as fh:  # the runner's file: append to it
                fh.write(text)
        except OSError as exc:  # the summary is a courtesy: never fail verify for it
            sys.stderr.write(
                f"warning: cannot append the report to GITHUB_STEP_SUMMARY ({exc.strerror})\n"
            )

    if junit is not None:
        from mlrepro.verify.ci import junit_xml

        atomic.write_bytes(junit, junit_xml(report))
    if report_file is not None:
        from mlrepro import report as reports

        fmt = reports.format_for(report_file, None)
        reports.write(report_file, reports.build(manifest, report, fmt))


def report(
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="File to write (default report.html; '-' for stdout)."),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="html (default) | markdown (a pull-request comment)."),
    ] = None,
    project: Annotated[
        Path | None,
        typer.Option("-p", "--project", help="Project folder (holding mlrepro.yaml) or manifest."),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option("--verify/--no-verify", help="Re-execute and include the verdicts."),
    ] = True,
    offline: Annotated[
        bool, typer.Option("--offline", help="Verify from the recorded snapshot (no database).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print only errors.")] = False,
) -> None:
    """Write one self-contained report: lineage, verify verdicts, metrics, plots, environment.

    Exits 0 once the report is written, whatever the verdict (use 'verify --report' to gate).
    """
    from mlrepro import report as reports
    from mlrepro.core import manifest as manifest_mod

    fmt = reports.format_for(output, fmt)
    stdout = output is not None and str(output) == "-"
    if output is None and fmt == "markdown":
        stdout = True
    target = output if output is not None else Path("report.html")
    if not stdout:
        _check_file(target, "-o")
    if stdout and as_json:
        raise UsageError(
            "--json prints a summary of the written file, so it needs -o FILE",
            hint="give -o report.html, or drop --json to print the report itself",
        )
    if offline and not verify:
        raise UsageError("--offline needs --verify", hint="drop --offline, or drop --no-verify")
    m = manifest_mod.load(project)
    result = None
    if verify:
        from mlrepro.verify.session import verify as run_verify

        result = run_verify(m, offline=offline)
    text = reports.build(m, result, fmt)
    if stdout and not as_json:
        sys.stdout.write(text)
        return
    if not stdout:
        reports.write(target, text)
    summary = {
        "report": None if stdout else str(target),
        "format": fmt,
        "project": m.name,
        "verified": result is not None,
        "reproduced": None if result is None else result.exit_code == 0,
        "verify_exit_code": None if result is None else result.exit_code,
    }
    if as_json:
        _emit_json(summary)
    elif not quiet:
        verdict = (
            "not verified"
            if result is None
            else ("reproduced" if result.exit_code == 0 else "not reproduced")
        )
        typer.echo(f"report {m.name} ({verdict}) -> {target}")


def export(
    mlflow_dir: Annotated[
        Path | None,
        typer.Option("--mlflow", help="Write an MLflow model (pyfunc) into this new folder."),
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", "-b", help="Export this bundle (default: bundle the project)."),
    ] = None,
    expect: Annotated[
        str | None,
        typer.Option("--expect", help="Refuse the bundle unless it has this fingerprint."),
    ] = None,
    project: Annotated[
        Path | None,
        typer.Option("-p", "--project", help="Project folder (holding mlrepro.yaml) or manifest."),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="Also log the run (params, metrics, fingerprints)."),
    ] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="MLflow experiment (default: project).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON result.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print only errors.")] = False,
) -> None:
    """Export the trained model for other tools: an MLflow model around the verified bundle."""
    from mlrepro.delivery import mlflow_export

    if mlflow_dir is None:
        raise UsageError("nothing to export to", hint="give --mlflow DIR")
    if bundle is not None and project is not None:
        raise UsageError("use just one of --bundle or -p/--project", hint="pick one model")
    if experiment is not None and tracking_uri is None:
        raise UsageError("--experiment needs --tracking-uri", hint="add --tracking-uri URI")
    mlflow_export.require_mlflow()  # a missing MLflow is a usage error before any work
    mlflow_export.check_target(mlflow_dir)
    with tempfile.TemporaryDirectory(prefix="mlrepro-export-") as tmp:
        path = bundle
        if path is None:
            from mlrepro.core import manifest as manifest_mod
            from mlrepro.delivery import bundle as fmt
            from mlrepro.project.locking import project_lock

            m = manifest_mod.load(project)
            path = Path(tmp) / f"{m.name}{fmt.SUFFIX}"
            with project_lock(m.root, 0.0):
                fmt.build(m, path)
        info = mlflow_export.export(
            path, mlflow_dir, expect=expect, tracking_uri=tracking_uri, experiment=experiment
        )
    if as_json:
        _emit_json(info)
        return
    if quiet:
        return
    typer.echo(f"exported {info['project']} -> MLflow model {info['mlflow_model']}")
    typer.echo(f"  bundle fingerprint {info['bundle_fingerprint']}")
    typer.echo(f"  model fingerprint  {info['model_fingerprint']}")
    if info.get("run_id"):
        typer.echo(f"  logged run {info['run_id']} to {tracking_uri}")


def register(app: typer.Typer) -> None:
    app.command()(report)
    app.command()(export)
