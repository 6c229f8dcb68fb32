"""The typer app behind ``mlrepro``: one thin function per command (``main.py`` runs it).

No pandas / scikit-learn import at module level: ``mlrepro --help`` stays instant and a
no-op ``mlrepro run`` never imports scikit-learn (it does not even import this module: see
``quick.py``).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlrepro.cli.delivery import RuntimeOpt
from mlrepro.cli.delivery import register as register_delivery
from mlrepro.cli.env import register as register_env
from mlrepro.cli.online import register as register_online
from mlrepro.cli.quick import emit_json, report_failure, run_stages, show_status
from mlrepro.cli.registry import register as register_registry
from mlrepro.cli.reports import register as register_reports
from mlrepro.errors import EXIT_INTERRUPTED, UsageError
from mlrepro.version import __version__

app = typer.Typer(
    name="mlrepro",
    help="Reproducible ML pipelines: extract -> features -> select -> train -> predict, "
    "with fingerprinted artifacts, a lock file and verification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Project = Annotated[
    Path | None,
    typer.Option("-p", "--project", help="Project folder (holding mlrepro.yaml) or manifest."),
]
Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result.")]
Force = Annotated[bool, typer.Option("--force", help="Re-run even if unchanged.")]
Wait = Annotated[
    float,
    typer.Option("--wait", help="Seconds to wait for another mlrepro writing this project."),
]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Print only errors.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlrepro {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """Reproducible ML pipelines with proof that production runs the same model."""


_emit_json = emit_json


def _run_stages(
    project: Path | None,
    stages: list[str] | None,
    force: bool,
    as_json: bool,
    quiet: bool,
    wait: float,
) -> None:
    run_stages(project, stages, force, as_json, quiet, wait)


def _stage_command(name: str, doc: str, stages: list[str] | None = None) -> None:
    """Register ``mlrepro NAME``: run ``stages`` (default: the stage NAME; None for run)."""
    only = stages if stages is not None or name == "run" else [name]

    def command(
        project: Project = None,
        force: Force = False,
        as_json: Json = False,
        quiet: Quiet = False,
        wait: Wait = 0.0,
    ) -> None:
        _run_stages(project, only, force, as_json, quiet, wait)

    command.__doc__ = doc
    app.command(name=name)(command)


_stage_command(
    "run", "Run the whole pipeline; stages whose inputs and parameters are unchanged are skipped."
)
_stage_command("extract", "Query the source as of source.as_of into a fingerprinted snapshot.")
_stage_command("features", "Fit the feature steps on the training rows and transform all rows.")
_stage_command("select", "Fit the selection method and record the selected features.")
_stage_command("train", "Fit the model, score the held-out rows, save the end-to-end pipeline.")


@app.command()
def status(project: Project = None, as_json: Json = False) -> None:
    """Show each stage as up to date, stale (with the reason) or missing."""
    show_status(project, as_json)


@app.command()
def predict(
    project: Project = None,
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="CSV or parquet input.")
    ] = None,
    query: Annotated[str | None, typer.Option("--query", help="SQL query as input.")] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Database URL for --query / --table (default: source.url)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="CSV or parquet output.")
    ] = None,
    table: Annotated[
        str | None, typer.Option("--table", help="Write predictions to this database table.")
    ] = None,
    on_invalid: Annotated[
        str, typer.Option("--on-invalid", help="fail | skip | quarantine invalid rows.")
    ] = "fail",
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="Where quarantined rows go (CSV/parquet).")
    ] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option("--keep", help="Input column to copy to the output (repeatable)."),
    ] = None,
    encoding: Annotated[
        str, typer.Option("--encoding", help="Text encoding of a CSV input.")
    ] = "utf-8",
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", help="Rows per chunk.")] = 100_000,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", "-b", help="Predict with a .mlrepro bundle (no project needed)."),
    ] = None,
    expect: Annotated[
        str | None,
        typer.Option("--expect", help="With --bundle: refuse it unless it has this fingerprint."),
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="local | dask (partitions on a Dask cluster).")
    ] = "local",
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Dask scheduler address (default: a local cluster)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Processes of the local Dask cluster.")
    ] = None,
    trust: Annotated[
        list[Path] | None,
        typer.Option("--trust", help="With --bundle/--registry: require a signature by this key."),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="Predict with the bundle --alias names in this registry."),
    ] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="Alias, with --registry.")] = None,
    runtime: RuntimeOpt = "auto",
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Predict with the trained pipeline. Without --input/--query, runs the manifest's predict."""
    from mlrepro.cli.console import Console
    from mlrepro.core import manifest as manifest_mod
    from mlrepro.predict.io import CHECKED, check_io, known_rows

    ui = Console(quiet=quiet or as_json)
    io: dict[str, Any] = {
        "input": input,
        "query": query,
        "url": url,
        "output": output,
        "table": table,
        "on_invalid": on_invalid,
        "rejects": rejects,
        "keep": tuple(keep or ()),
        "encoding": encoding,
        "chunk_rows": chunk_rows,
        "engine": engine,
        "scheduler": scheduler,
        "workers": workers,
    }
    if (registry is None) != (alias is None):
        raise UsageError("--registry and --alias go together", hint="pass both, or neither")
    if bundle is not None or registry is not None:
        from mlrepro.cli.delivery import bundle_predict

        if bundle is not None and project is not None:
            raise UsageError("use just one of --bundle or -p/--project", hint="pick one model")
        if registry is not None and (bundle is not None or project is not None):
            raise UsageError(
                "use just one of --registry, --bundle or -p/--project", hint="pick one model"
            )
        summary = bundle_predict(bundle, ui, io, expect, trust, registry, alias, runtime)
    else:
        if expect is not None:
            raise UsageError("--expect needs --bundle", hint="add --bundle FILE, or drop --expect")
        if runtime != "auto":
            raise UsageError(
                "--runtime needs --bundle or --registry",
                hint="a project predicts with its fitted pipeline; bundle it with --accelerate",
            )
        if trust:
            raise UsageError(
                "--trust needs --bundle or --registry",
                hint="a project's own pipeline is not signed; add --bundle FILE",
            )
        m = manifest_mod.load(project)
        if input is None and query is None:
            if output or table:
                raise typer.BadParameter("--output/--table need --input or --query")
            _run_stages(project, ["predict"], True, as_json, quiet, 0.0)
            return
        from mlrepro.pipeline.runner import Runner

        check_io(**{k: v for k, v in io.items() if k in CHECKED})
        summary = Runner(m).predict_adhoc(
            on_progress=ui.progress("predict", known_rows(input)),
            warn=lambda msg: ui.report("warn", "predict", msg),
            **io,
        )
    if as_json:
        _emit_json(summary)
    else:
        ui.predict_summary(summary)
    if summary["rejected"] and on_invalid != "fail":
        raise typer.Exit(0)


@app.command()
def verify(
    project: Project = None,
    stage: Annotated[
        str | None,
        typer.Option("--stage", help="Verify one stage alone, fed the recorded upstream outputs."),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Skip the database: start from the recorded snapshot.")
    ] = False,
    rtol: Annotated[
        float, typer.Option("--rtol", help="Relative tolerance for 'equivalent' numbers.")
    ] = 1e-9,
    atol: Annotated[
        float, typer.Option("--atol", help="Absolute tolerance for 'equivalent' numbers.")
    ] = 1e-12,
    trust_artifacts: Annotated[
        bool,
        typer.Option(
            "--trust-artifacts",
            help="Also load the project's pickled models (runs their code: only for projects "
            "you trust) to feed stages and compare fitted state.",
        ),
    ] = False,
    attest: Annotated[
        Path | None,
        typer.Option("--attest", help="Sign the report with this key (NAME.key) into -o FILE."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="With --attest: the attestation file.")
    ] = None,
    as_json: Json = False,
    quiet: Quiet = False,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="text (default) | json | github (workflow annotations)."),
    ] = None,
    report_file: Annotated[
        Path | None,
        typer.Option("--report", help="Also write an HTML report (Markdown if FILE ends in .md)."),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write JUnit XML, one test per stage.")
    ] = None,
) -> None:
    """Re-execute the pipeline in a scratch folder and compare every stage with mlrepro.lock.

    Exit 0 when every stage is identical or equivalent, 1 when one is different or the
    source changed, 4 when a recorded artifact was modified.
    """
    from mlrepro.cli.reports import check_outputs, output_format, write_outputs
    from mlrepro.cli.verify import Spinner, render
    from mlrepro.core import manifest as manifest_mod
    from mlrepro.verify.compare import Tolerance
    from mlrepro.verify.session import verify as run_verify

    fmt = output_format(fmt, as_json)
    check_outputs(report_file, junit)
    if (attest is None) != (output is None):
        raise UsageError(
            "--attest KEY and -o FILE go together",
            hint="e.g. mlrepro verify --attest me.key -o verification.json",
        )
    m = manifest_mod.load(project)
    if attest is not None:
        from mlrepro.delivery.signing import load_private_key

        load_private_key(attest)  # a bad key fails before the (long) verification
    tol = Tolerance(rtol=rtol, atol=atol)
    with Spinner() if not (quiet or fmt != "text") else contextlib.nullcontext() as spin:
        report = run_verify(
            m,
            tol=tol,
            offline=offline,
            stage=stage,
            on_stage=spin,
            trust_artifacts=trust_artifacts,
        )
    write_outputs(m, report, report_file, junit, fmt)
    result = report.to_dict()
    if attest is not None and output is not None:
        from mlrepro.cli.registry import attest as write_attestation

        result["attestation"] = write_attestation(m, report.to_dict(), attest, output)
    if fmt == "json":
        _emit_json(result)
    elif fmt == "github":
        from mlrepro.verify.ci import github_annotations

        sys.stdout.write(github_annotations(report))
    elif not quiet:
        render(report)
        if "attestation" in result:
            a = result["attestation"]
            typer.echo(f"attestation {a['attestation']} signed with {a['key_id']}")
    if report.exit_code:
        raise typer.Exit(report.exit_code)


register_delivery(app)
register_online(app)
register_reports(app)
register_env(app)
register_registry(app)


def _click_exceptions() -> tuple[Any, Any, Any]:
    """Click's Abort, ClickException and Exit classes, from click and from the copy of click
    that newer typer versions vendor as ``typer._click`` (their classes are distinct)."""
    import importlib

    modules = []
    for name in ("click.exceptions", "typer._click.exceptions"):
        with contextlib.suppress(ImportError):
            modules.append(importlib.import_module(name))
    aborts, errors, exits = (
        tuple(getattr(m, cls) for m in modules if hasattr(m, cls))
        for cls in ("Abort", "ClickException", "Exit")
    )
    return aborts, errors, exits


def dispatch(args: list[str]) -> int:
    """Run the app; return its exit code, reporting any error on stderr (or as JSON)."""
    aborts, usage_errors, exits = _click_exceptions()
    try:
        rv = app(args=args, prog_name="mlrepro", standalone_mode=False)
    except (*aborts, typer.Abort, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    except usage_errors as exc:
        exc.show()
        return exc.exit_code
    except (*exits, typer.Exit) as exc:  # distinct classes in newer typer
        return exc.exit_code
    except Exception as exc:  # MlreproError, or an unexpected one made into it
        return report_failure(exc, args)
    return rv if isinstance(rv, int) else 0
