"""``mlrepro env``: show, diff, export, check and recreate the environment a model needs.

Thin like the rest of the CLI: the record is ``core.env``, the sources (lock or bundle)
``delivery.envrecord``, the requirements file and the virtual environment ``core.recreate``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result.")]
Project = Annotated[
    Path | None,
    typer.Option("-p", "--project", help="Project folder whose mlrepro.lock to read."),
]
LockOpt = Annotated[
    Path | None, typer.Option("--lock", help="Compare with this mlrepro.lock (default: ./).")
]
BundleOpt = Annotated[
    Path | None, typer.Option("--bundle", help="Compare with the record in this bundle.")
]
OnlyMatters = Annotated[
    bool,
    typer.Option(
        "--only-matters",
        help="Pin only the packages the pipeline's classes come from and their dependencies.",
    ),
]

env_app = typer.Typer(
    name="env",
    help="The environment a model was recorded in: show, diff, export, check, recreate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _recorded(lock: Path | None, bundle: Path | None, project: Path | None) -> Any:
    from mlrepro.delivery.envrecord import load

    return load(lock, bundle, project)


@env_app.command()
def show(as_json: Json = False) -> None:
    """The current environment: Python, OS, CPU, BLAS/OpenMP threads, every distribution."""
    from mlrepro.environment import record as env

    record = env.capture()
    if as_json:
        _emit_json(record)
        return
    cpu = record["cpu"]
    typer.echo(f"Python {record['python']} ({record['implementation']}) on {record['platform']}")
    typer.echo(f"CPU {cpu['model']}, {cpu['count']} cores; {' '.join(cpu['flags']) or '-'}")
    for pool in record["threadpools"]:
        layer = f", threading {pool['threading_layer']}" if pool.get("threading_layer") else ""
        typer.echo(
            f"{pool.get('user_api')}: {pool.get('internal_api')} {pool.get('version') or ''} "
            f"({pool.get('prefix')}{layer}), {pool.get('num_threads')} threads"
        )
    for key, value in record["variables"].items():
        typer.echo(f"${key}={value}")
    typer.echo(f"{len(record['distributions'])} distributions:")
    for name, entry in record["distributions"].items():
        origin = f"  ({entry['url']})" if entry.get("url") else ""
        typer.echo(f"  {name}=={entry['version']}{origin}")


@env_app.command()
def diff(
    lock: LockOpt = None, bundle: BundleOpt = None, project: Project = None, as_json: Json = False
) -> None:
    """Differences from the recorded environment, most likely cause of a difference first.

    The packages the pipeline's classes come from, then their dependencies, then numerics
    (BLAS and threads, CPU instruction sets, variables, Python), then everything else.
    """
    from mlrepro.environment import record as env

    rec = _recorded(lock, bundle, project)
    entries = env.ranked(rec.record, env.capture(), rec.class_paths)
    if as_json:
        _emit_json(
            {
                "recorded": rec.source,
                "environment_fingerprint": rec.fingerprint,
                "classes": rec.class_paths,
                "identical": not entries,
                "matters": sum(bool(e["matters"]) for e in entries),
                "differences": entries,
            }
        )
        return
    if not entries:
        typer.echo(f"this environment is the one recorded in {rec.source}")
        return
    typer.echo(f"differences from {rec.source} (recorded -> here), most relevant first:")
    for e in entries:
        mark = "!" if e["matters"] else " "
        typer.echo(f" {mark} [{e['tier']}] {e['text']}")
    n = sum(bool(e["matters"]) for e in entries)
    typer.echo(f"{len(entries)} difference(s); {n} in packages that matter (marked !)")


@env_app.command()
def check(
    lock: LockOpt = None, bundle: BundleOpt = None, project: Project = None, as_json: Json = False
) -> None:
    """Exit 1 when a package that matters to the pipeline differs (for CI and deployment)."""
    from mlrepro.environment import record as env

    rec = _recorded(lock, bundle, project)
    entries = env.ranked(rec.record, env.capture(), rec.class_paths)
    bad = [e for e in entries if e["matters"]]
    if as_json:
        _emit_json(
            {
                "recorded": rec.source,
                "ok": not bad,
                "exit_code": 1 if bad else 0,
                "matters": bad,
                "other_differences": len(entries) - len(bad),
            }
        )
    elif bad:
        typer.echo(
            f"environment check failed: {len(bad)} package(s) that matter differ from {rec.source}:"
        )
        for e in bad:
            typer.echo(f"  {e['text']}")
        typer.echo("  hint: 'mlrepro env recreate DIR' builds the recorded environment")
    else:
        typer.echo(
            f"environment check passed: the packages that matter match {rec.source} "
            f"({len(entries)} other difference(s))"
        )
    if bad:
        raise typer.Exit(1)


@env_app.command()
def export(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the file here (default: stdout).")
    ] = None,
    lock: LockOpt = None,
    bundle: BundleOpt = None,
    project: Project = None,
    only_matters: OnlyMatters = False,
) -> None:
    """A pinned requirements file that recreates the recorded environment
    (pip install -r FILE, or uv pip sync FILE)."""
    from mlrepro.core import atomic
    from mlrepro.environment.recreate import requirements

    rec = _recorded(lock, bundle, project)
    req = requirements(
        rec.record,
        rec.class_paths,
        only_matters=only_matters,
        source=rec.source,
        fingerprint=rec.fingerprint,
    )
    if output is None:
        sys.stdout.write(req.text)
        return
    atomic.write_bytes(output, req.text.encode("utf-8"))
    typer.echo(f"wrote {output}: {len(req.pinned)} pinned requirement(s)", err=True)
    for line in req.unpinnable:
        typer.echo(f"  not on an index (install it yourself): {line}", err=True)


@env_app.command()
def recreate(
    directory: Annotated[Path, typer.Argument(help="New folder for the virtual environment.")],
    lock: LockOpt = None,
    bundle: BundleOpt = None,
    project: Project = None,
    python: Annotated[
        str | None, typer.Option("--python", help="Interpreter for the new environment.")
    ] = None,
    only_matters: OnlyMatters = False,
    as_json: Json = False,
) -> None:
    """Build a virtual environment from the record (uv when on PATH, else pip) with mlrepro
    installed, so that 'DIR/bin/mlrepro verify' runs in the recorded environment."""
    from mlrepro.environment.recreate import recreate as build

    rec = _recorded(lock, bundle, project)
    result = build(
        rec.record,
        rec.class_paths,
        directory,
        python=python,
        only_matters=only_matters,
        source=rec.source,
        fingerprint=rec.fingerprint,
        verbose=sys.stderr.isatty() and not as_json,
    )
    if as_json:
        _emit_json(result)
        return
    typer.echo(
        f"created {result['directory']} with {result['installer']}: "
        f"{result['pinned']} pinned requirement(s)"
    )
    for line in result["not_pinned"]:
        typer.echo(f"  not pinned (not on an index): {line}")
    if result["remaining_differences"]:
        typer.echo("still differs from the record:")
        for line in result["remaining_differences"]:
            typer.echo(f"  {line}")
    typer.echo(f"next: {result['mlrepro']} verify")


def register(app: typer.Typer) -> None:
    app.add_typer(env_app, name="env")
