"""Delivery commands: ``mlrepro bundle``, ``mlrepro inspect`` and ``predict --bundle``.

Thin like the rest of the CLI: the work is in ``bundle``, ``api`` and ``predict_cli``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Print only errors.")]
Expect = Annotated[
    str | None,
    typer.Option("--expect", help="Refuse the bundle unless its fingerprint is this one."),
]


def echo(text: object = "") -> None:
    from mlrepro.cli.console import echo as safe_echo

    safe_echo(text)


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def bundle(
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Bundle file to write (default: <name>.mlrepro)."),
    ] = None,
    project: Annotated[
        Path | None,
        typer.Option("-p", "--project", help="Project folder (holding mlrepro.yaml) or manifest."),
    ] = None,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for another mlrepro writing it.")
    ] = 0.0,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Pack the trained model into one integrity-checked file for production."""
    from mlrepro.core import manifest as manifest_mod
    from mlrepro.delivery import bundle as fmt
    from mlrepro.project.locking import project_lock

    m = manifest_mod.load(project)
    target = output if output is not None else Path(f"{m.name}{fmt.SUFFIX}")
    with project_lock(m.root, wait):
        info = fmt.build(m, target)
    if as_json:
        _emit_json(info)
    elif not quiet:
        echo(f"bundled {info['project']} -> {info['bundle']} ({_size(info['size'])})")
        echo(f"  bundle fingerprint {info['fingerprint']}")
        echo(f"  model fingerprint  {info['model_fingerprint']}")


def inspect(
    path: Annotated[Path, typer.Argument(help="A .mlrepro bundle.")],
    expect: Expect = None,
    as_json: Json = False,
) -> None:
    """Verify a bundle (without loading the model) and print its model card and fingerprints."""
    from mlrepro.core import env
    from mlrepro.delivery import bundle as fmt

    verified = fmt.read_verified(path, expect)
    meta = verified.metadata()
    diff = env.diff(meta.get("environment", {}), env.capture())
    if as_json:
        _emit_json(
            {
                "bundle": str(path),
                "fingerprint": verified.fingerprint,
                "bundle_format": verified.index["bundle_format"],
                "mlrepro_version": verified.index.get("mlrepro_version"),
                "members": verified.index["members"],
                "metadata": meta,
                "environment_diff": diff,
                "card": verified.text(fmt.CARD),
                "pinned": expect is not None,
                "origin": provenance(expect),
            }
        )
        return
    echo(verified.text(fmt.CARD))
    echo(f"## Bundle {path.name}\n")
    echo(f"fingerprint {verified.fingerprint}  (every member verified)")
    echo(f"origin: {provenance(expect)}")
    for name, entry in sorted(verified.index["members"].items()):
        echo(f"  {name:<16} {entry['size']:>10}  {entry['file_hash']}")
    if diff:
        echo("\nthis environment differs from training:")
        for line in diff:
            echo(f"  {line}")


def provenance(expect: str | None) -> str:
    """What the integrity check proves about where the bundle came from."""
    if expect:
        return "pinned: its fingerprint is the one you passed with --expect"
    return (
        "NOT PROVEN: checked only against its own index (not pinned, not signed); anyone "
        "who can rewrite the file can rewrite the index too. Pin it with --expect "
        "FINGERPRINT, taken from where the bundle was built"
    )


def bundle_predict(path: Path, ui: Any, io: dict[str, Any], expect: str | None) -> dict[str, Any]:
    """``mlrepro predict --bundle``: no project folder, no database needed."""
    import warnings

    from mlrepro.delivery.api import load_bundle
    from mlrepro.predict.io import CHECKED, check_io, known_rows, predict_io

    check_io(**{k: v for k, v in io.items() if k in CHECKED}, default_url=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_bundle(path, expect_fingerprint=expect)
    for w in caught:
        ui.report("warn", "predict", str(w.message))
    return predict_io(
        model.pipeline,
        model.contract,
        root=Path.cwd(),
        default_url=None,
        on_progress=ui.progress("predict", known_rows(io.get("input"))),
        warn=lambda msg: ui.report("warn", "predict", msg),
        **io,
    )


def register(app: typer.Typer) -> None:
    app.command()(bundle)
    app.command()(inspect)
