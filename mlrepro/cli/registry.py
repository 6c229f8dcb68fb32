"""Provenance and registry commands: ``keygen``, ``sign``, ``publish``, ``registry ...``.

Thin like the rest of the CLI: the work is in ``delivery.signing`` and ``delivery.registry``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlrepro.errors import UsageError

Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Print only errors.")]
RegistryOpt = Annotated[
    str,
    typer.Option("--registry", help="Registry: a folder, or a SQLAlchemy database URL."),
]
AliasOpt = Annotated[str, typer.Option("--alias", help="Alias, e.g. production.")]
Trust = Annotated[
    list[Path] | None,
    typer.Option("--trust", help="Public key (NAME.pub) whose signature is required (repeatable)."),
]

registry_app = typer.Typer(
    name="registry",
    help="Look at and move registry aliases: list, history, rollback.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _short(fp: str | None) -> str:
    return f"{fp[:15]}..." if fp else "-"


# ------------------------------------------------------------------------------ keys


def keygen(
    name: Annotated[Path, typer.Argument(help="Writes NAME.key (private, 0600) and NAME.pub.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing pair.")] = False,
    as_json: Json = False,
) -> None:
    """Make an ed25519 key pair for signing bundles and attestations."""
    from mlrepro.delivery.signing import keygen as make

    info = make(name, force=force)
    if as_json:
        _emit_json(info)
        return
    typer.echo(f"private key {info['private_key']} (keep it secret; mode 0600)")
    typer.echo(f"public key  {info['public_key']} (give it to whoever checks with --trust)")
    typer.echo(f"key id      {info['key_id']}")


def sign(
    bundle: Annotated[Path, typer.Argument(help="A .mlrepro bundle.")],
    key: Annotated[Path, typer.Option("--key", help="Private key (NAME.key).")] = ...,  # type: ignore[assignment]
    attestation: Annotated[
        list[Path] | None,
        typer.Option("--attestation", help="Embed a verify attestation file (repeatable)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here (default: in place).")
    ] = None,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Sign a bundle's fingerprint (the fingerprint itself does not change)."""
    from mlrepro.delivery import signing

    info = signing.sign_file(
        bundle,
        signing.load_private_key(key),
        attestations=[signing.read_envelope_file(a) for a in attestation or ()],
        output=output,
    )
    if as_json:
        _emit_json(info)
        return
    if quiet:
        return
    typer.echo(f"signed {info['bundle']} with {info['key_id']}")
    typer.echo(f"  bundle fingerprint {info['fingerprint']} (unchanged)")
    typer.echo(f"  {info['signatures']} signature(s), {info['attestations']} attestation(s)")


def sign_after_bundle(
    info: dict[str, Any], key: Path | None, attestations: list[Path] | None
) -> dict[str, Any]:
    """``mlrepro bundle --sign KEY [--attestation FILE]``: sign the bundle just written."""
    from mlrepro.delivery import signing

    if key is None:
        if attestations:
            raise UsageError("--attestation needs --sign KEY", hint="add --sign NAME.key")
        return info
    private = signing.load_private_key(key)
    envs = [signing.read_envelope_file(a) for a in attestations or ()]
    signed = signing.sign_file(info["bundle"], private, attestations=envs)
    return {**info, "key_id": signed["key_id"], "attestations": signed["attestations"]}


def check_sign_options(key: Path | None, attestations: list[Path] | None) -> None:
    """Fail on a bad key or attestation *before* the bundle is written."""
    from mlrepro.delivery import signing

    if key is not None:
        signing.load_private_key(key)
    elif attestations:
        raise UsageError("--attestation needs --sign KEY", hint="add --sign NAME.key")
    for a in attestations or ():
        signing.read_envelope_file(a)


def attest(m: Any, report: dict[str, Any], key: Path, output: Path) -> dict[str, Any]:
    """``mlrepro verify --attest KEY -o FILE``: the signed verification statement."""
    from mlrepro.core import atomic
    from mlrepro.delivery import signing
    from mlrepro.environment import record as env
    from mlrepro.errors import ArtifactError
    from mlrepro.project import lockfile

    private = signing.load_private_key(key)
    lock = lockfile.read(m.root, m.name)
    try:
        model_fp = lock["stages"]["train"]["outputs"]["pipeline"]["fingerprint"]
    except (KeyError, TypeError):
        raise ArtifactError(
            "mlrepro.lock records no trained model, so there is nothing to attest",
            hint="run 'mlrepro run' first",
        ) from None
    envelope = signing.attest_verification(report, model_fp, private, env.capture())
    atomic.write_bytes(output, (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode())
    return {"attestation": str(output), "model_fingerprint": model_fp, "key_id": private.id}


# ------------------------------------------------------------------------------ registry


def publish(
    bundle: Annotated[Path, typer.Argument(help="A .mlrepro bundle.")],
    registry: RegistryOpt = ...,  # type: ignore[assignment]
    alias: AliasOpt = ...,  # type: ignore[assignment]
    trust: Trust = None,
    require_attestation: Annotated[
        bool,
        typer.Option(
            "--require-attestation",
            help="Refuse a bundle without a verify attestation that reproduced (needs --trust).",
        ),
    ] = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Store a bundle in a registry and move an alias to it (atomically, with history)."""
    from mlrepro.delivery import signing
    from mlrepro.delivery.registry import open_registry

    keys = signing.trusted(trust)
    reg = open_registry(registry, create=True)
    try:
        move = reg.publish(
            bundle, alias, trusted_keys=keys, require_attestation=require_attestation
        )
    finally:
        reg.close()
    if as_json:
        _emit_json({"registry": reg.url, **move.to_dict()})
    elif not quiet:
        typer.echo(
            f"published {bundle.name} -> {reg.url}: alias {alias!r} move {move.seq} now names "
            f"model {move.model_fingerprint}"
        )
        typer.echo(f"  bundle fingerprint {move.bundle_fingerprint}")
        if move.previous:
            typer.echo(f"  before: {move.previous} (roll back with 'mlrepro registry rollback')")


@registry_app.command("list")
def list_aliases(registry: RegistryOpt = ..., as_json: Json = False) -> None:  # type: ignore[assignment]
    """Every alias and the bundle it names now."""
    from mlrepro.delivery.registry import open_registry

    reg = open_registry(registry)
    try:
        rows = reg.listing()
    finally:
        reg.close()
    if as_json:
        _emit_json({"registry": reg.url, "aliases": rows})
        return
    if not rows:
        typer.echo(f"{reg.url}: no aliases yet (mlrepro publish FILE --registry URL --alias A)")
    for r in rows:
        typer.echo(
            f"{r['alias']:<16} move {r['seq']:<4} {r['project']:<24} model "
            f"{_short(r['model_fingerprint'])} bundle {_short(r['bundle_fingerprint'])} "
            f"{r['action']} by {r['by']} at {r['at']}"
        )


@registry_app.command("history")
def history(
    registry: RegistryOpt = ...,  # type: ignore[assignment]
    alias: AliasOpt = ...,  # type: ignore[assignment]
    as_json: Json = False,
) -> None:
    """Every move of an alias, oldest first."""
    from mlrepro.delivery.registry import open_registry

    reg = open_registry(registry)
    try:
        moves = reg.history(alias)
    finally:
        reg.close()
    if not moves:
        raise UsageError(
            f"alias {alias!r} does not exist in {reg.url}",
            hint="list the aliases with 'mlrepro registry list --registry URL'",
        )
    if as_json:
        _emit_json({"registry": reg.url, "alias": alias, "moves": [m.to_dict() for m in moves]})
        return
    for m in moves:
        mark = "*" if m is moves[-1] else " "
        typer.echo(
            f"{mark} {m.seq:<4} {m.action:<8} model {_short(m.model_fingerprint)} bundle "
            f"{_short(m.bundle_fingerprint)} by {m.by} at {m.at}"
        )


@registry_app.command("rollback")
def rollback(
    registry: RegistryOpt = ...,  # type: ignore[assignment]
    alias: AliasOpt = ...,  # type: ignore[assignment]
    to: Annotated[
        str | None,
        typer.Option("--to", help="Move number or fingerprint (default: the previous bundle)."),
    ] = None,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Move an alias back to a bundle it named before (recorded as a new move)."""
    from mlrepro.delivery.registry import open_registry

    reg = open_registry(registry)
    try:
        move = reg.rollback(alias, to)
    finally:
        reg.close()
    if as_json:
        _emit_json({"registry": reg.url, **move.to_dict()})
    elif not quiet:
        typer.echo(
            f"rolled back alias {alias!r}: move {move.seq} names model {move.model_fingerprint} "
            f"again (bundle {move.bundle_fingerprint})"
        )


def register(app: typer.Typer) -> None:
    app.command()(keygen)
    app.command()(sign)
    app.command()(publish)
    app.add_typer(registry_app)
