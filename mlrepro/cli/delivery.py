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
Trust = Annotated[
    list[Path] | None,
    typer.Option("--trust", help="Public key (NAME.pub) whose signature is required (repeatable)."),
]
RuntimeOpt = Annotated[
    str,
    typer.Option(
        "--runtime",
        help="auto: the bundle's accelerated program if it has one (bundle --accelerate), "
        "else scikit-learn | accelerated: require the program | sklearn: ignore it.",
    ),
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
    sign: Annotated[
        Path | None, typer.Option("--sign", help="Sign the bundle with this key (NAME.key).")
    ] = None,
    attestation: Annotated[
        list[Path] | None,
        typer.Option(
            "--attestation", help="Embed a 'verify --attest' file (repeatable; needs --sign)."
        ),
    ] = None,
    accelerate: Annotated[
        bool,
        typer.Option(
            "--accelerate",
            help="Also carry the pipeline compiled for the accelerated runtime (needs the "
            "'accelerate' extra), kept only if it is equivalent on the training rows.",
        ),
    ] = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Pack the trained model into one integrity-checked file for production."""
    from mlrepro.cli.registry import check_sign_options, sign_after_bundle
    from mlrepro.core import manifest as manifest_mod
    from mlrepro.delivery import bundle as fmt
    from mlrepro.project.locking import project_lock

    m = manifest_mod.load(project)
    target = output if output is not None else Path(f"{m.name}{fmt.SUFFIX}")
    check_sign_options(sign, attestation)
    with project_lock(m.root, wait):
        info = fmt.build(m, target, accelerate=accelerate)
    info = sign_after_bundle(info, sign, attestation)
    info["size"] = Path(info["bundle"]).stat().st_size
    if as_json:
        _emit_json(info)
    elif not quiet:
        echo(f"bundled {info['project']} -> {info['bundle']} ({_size(info['size'])})")
        echo(f"  bundle fingerprint {info['fingerprint']}")
        echo(f"  model fingerprint  {info['model_fingerprint']}")
        if info.get("key_id"):
            echo(f"  signed with        {info['key_id']}")
        if info.get("acceleration"):
            echo(f"  accelerated        {describe_acceleration(info['acceleration'])}")


def describe_acceleration(record: dict[str, Any]) -> str:
    """One line: the accepted program's figures, or why there is none."""
    if record.get("status") != "accepted":
        return f"no: {record.get('reason', 'refused')}; scoring stays scikit-learn"
    rt, eq = record.get("runtime") or {}, record.get("equivalence") or {}
    what = rt.get("model", "?")
    if rt.get("trees"):
        what += f", {rt['trees']} trees"
    labels = eq.get("labels_identical")
    same = "" if labels is None else (", labels identical" if labels else ", labels DIFFER")
    return (
        f"yes ({rt.get('runtime', '?')}: {what}); equivalent on {eq.get('rows', '?')} rows"
        f"{same}, max abs diff {eq.get('max_abs', '?')}, max rel diff {eq.get('max_rel', '?')}"
    )


def inspect(
    path: Annotated[Path, typer.Argument(help="A .mlrepro bundle.")],
    expect: Expect = None,
    trust: Trust = None,
    as_json: Json = False,
) -> None:
    """Verify a bundle (without loading the model) and print its model card and fingerprints,
    signatures and attestations (checked against --trust keys)."""
    from mlrepro.delivery import bundle as fmt
    from mlrepro.delivery import runtime, signing
    from mlrepro.environment import record as env

    keys = signing.trusted(trust)
    verified = fmt.read_verified(path, expect)
    meta = verified.metadata()
    diff = env.diff(meta.get("environment", {}), env.capture_like(meta.get("environment", {})))
    provenance = signing.describe(
        signing.bundle_envelopes(verified),
        verified.fingerprint,
        str(verified.index.get("model_fingerprint")),
        keys,
    )
    record = runtime.record_of(verified)
    unpaired = runtime.unpaired_program(verified, record)
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
                "provenance": provenance,
                "acceleration": record,
                "acceleration_problem": unpaired,
                "pinned": expect is not None,
                "origin": origin_of(expect, provenance),
            }
        )
        return
    echo(verified.text(fmt.CARD))
    echo(f"## Bundle {path.name}\n")
    echo(f"fingerprint {verified.fingerprint}  (every member verified)")
    echo(f"origin: {origin_of(expect, provenance)}")
    for name, entry in sorted(verified.index["members"].items()):
        echo(f"  {name:<16} {entry['size']:>10}  {entry['file_hash']}")
    if unpaired:
        echo(
            f"accelerated: INCONSISTENT ({unpaired}): loading refuses it unless "
            "--runtime sklearn (which ignores the program)"
        )
    elif record is not None:
        echo(f"accelerated: {describe_acceleration(record)}")
    echo("\n## Signatures and attestations\n")
    if not provenance:
        echo("none: the bundle is unsigned (sign it with 'mlrepro sign BUNDLE --key KEY')")
    for p in provenance:
        keys_text = ", ".join(k[:23] + "..." for k in p.get("key_ids", [])) or "-"
        line = f"  {p['kind']:<12} {p['status']}  key {keys_text}"
        if p["kind"] == "attestation":
            line += (
                f"  reproduced={p.get('reproduced')} as_of={p.get('as_of')} "
                f"by {p.get('verified_by')} at {p.get('verified_at')}"
            )
        elif p.get("signed_by"):
            line += f"  by {p['signed_by']}"
        if not p.get("subject_matches", True):
            line += "  (names another bundle/model!)"
        echo(line)
    if diff:
        echo("\nthis environment differs from training:")
        for line in diff:
            echo(f"  {line}")


def origin_of(expect: str | None, provenance: list[dict[str, Any]]) -> str:
    """What the checks prove about where the bundle came from."""
    if expect:
        return "pinned: its fingerprint is the one you passed with --expect"
    if any(p.get("kind") == "signature" and p.get("status") == "trusted" for p in provenance):
        return "signed by a trusted key (--trust)"
    return (
        "NOT PROVEN: checked only against its own index (not pinned, no trusted signature); "
        "anyone "
        "who can rewrite the file can rewrite the index too. Pin it with --expect "
        "FINGERPRINT, taken from where the bundle was built"
    )


def bundle_predict(
    path: Path | None,
    ui: Any,
    io: dict[str, Any],
    expect: str | None,
    trust: list[Path] | None = None,
    registry: str | None = None,
    alias: str | None = None,
    runtime: str = "auto",
) -> dict[str, Any]:
    """``mlrepro predict --bundle`` (or ``--registry --alias``): no project, no database."""
    from mlrepro.delivery.api import load_reporting
    from mlrepro.predict.io import CHECKED, check_io, known_rows, predict_io

    check_io(**{k: v for k, v in io.items() if k in CHECKED}, default_url=None)
    warn = lambda msg: ui.report("warn", "predict", msg)  # noqa: E731
    if registry is not None:
        model = load_reporting(
            None,
            expect_fingerprint=None,
            report=warn,
            trusted_keys=trust,
            registry=registry,
            alias=alias,
            runtime=runtime,
            warm_up=False,  # one batch job: compile only the kernel it runs, when it runs
        )
        if expect is not None and model.fingerprint != expect:
            from mlrepro.errors import ArtifactError

            raise ArtifactError(
                f"alias {alias!r} names bundle {model.fingerprint}, not the expected {expect}",
                hint="drop --expect, or roll the alias back",
            )
    else:
        model = load_reporting(
            path,
            expect_fingerprint=expect,
            report=warn,
            trusted_keys=trust,
            runtime=runtime,
            warm_up=False,
        )
    summary = predict_io(
        model.pipeline,
        model.contract,
        root=Path.cwd(),
        default_url=None,
        on_progress=ui.progress("predict", known_rows(io.get("input"))),
        warn=warn,
        **io,
    )
    summary["runtime"] = model.runtime
    rows = getattr(model.pipeline, "rows", None)  # accelerated: rows per runtime
    if rows is not None:
        summary["runtime_rows"] = dict(rows)
    return summary


def register(app: typer.Typer) -> None:
    app.command()(bundle)
    app.command()(inspect)
