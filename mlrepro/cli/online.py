"""Online delivery commands: ``mlrepro serve`` (REST API) and ``mlrepro stream`` (Redis).

Thin like the rest of the CLI: the work is in ``serve_process``/``serve`` and ``stream``.
FastAPI, uvicorn and redis are imported only when a command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlrepro.cli.delivery import RuntimeOpt
from mlrepro.errors import UsageError

BundleArg = Annotated[
    Path | None,
    typer.Argument(help="A .mlrepro bundle (mlrepro bundle -o FILE); or --registry/--alias."),
]
Trust = Annotated[
    list[Path] | None,
    typer.Option("--trust", help="Public key (NAME.pub) whose signature is required (repeatable)."),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option("--registry", help="Follow --alias in this registry (folder or database URL)."),
]
AliasOpt = Annotated[str | None, typer.Option("--alias", help="Alias to follow, e.g. production.")]
Poll = Annotated[
    float, typer.Option("--poll", help="Seconds between alias checks (PostgreSQL: NOTIFY too).")
]
AllowChange = Annotated[
    bool,
    typer.Option(
        "--allow-contract-change",
        help="Swap to a model whose input columns/types differ from the current one.",
    ),
]


def _source(
    bundle: Path | None, registry: str | None, alias: str | None, expect: str | None
) -> None:
    if (registry is None) != (alias is None):
        raise UsageError("--registry and --alias go together", hint="pass both, or neither")
    if (bundle is None) == (registry is None):
        raise UsageError(
            "pass a bundle file, or --registry URL --alias NAME (not both)",
            hint="e.g. mlrepro serve model.mlrepro, or --registry ./registry --alias production",
        )
    if registry is not None and expect is not None:
        raise UsageError(
            "--expect pins one bundle, so it cannot follow an alias",
            hint="drop --expect (use --trust to accept only signed bundles)",
        )


Expect = Annotated[
    str | None,
    typer.Option("--expect", help="Refuse the bundle unless its fingerprint is this one."),
]


def _need(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UsageError(
            f"this command needs the Python package '{module}', which is not installed",
            hint="pip install 'mlrepro[serve]'",
        )


def serve(
    bundle: BundleArg = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on (0: any free one).")
    ] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 1,
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="Most records per request (more: 413).")
    ] = 1000,
    expect: Expect = None,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (off: faster).")
    ] = False,
    log_level: Annotated[
        str, typer.Option("--log-level", help="critical | error | warning | info | debug.")
    ] = "info",
    strict_env: Annotated[
        bool,
        typer.Option(
            "--strict-env",
            help="Refuse to start (exit 1) when a package that matters differs from training.",
        ),
    ] = False,
    trust: Trust = None,
    registry: RegistryOpt = None,
    alias: AliasOpt = None,
    poll: Poll = 2.0,
    allow_contract_change: AllowChange = False,
    runtime: RuntimeOpt = "auto",
) -> None:
    """Serve the bundle's model as a REST API: POST /predict, GET /health, /ready, /metadata.

    With --registry/--alias the model is the one the alias names, swapped without a
    restart when the alias moves (after every check passed)."""
    _source(bundle, registry, alias, expect)
    for module in ("fastapi", "uvicorn"):
        _need(module)
    from mlrepro.serving.process import ServeSpec, run

    run(
        ServeSpec(
            str(bundle) if bundle is not None else None,
            expect,
            max_batch,
            strict_env=strict_env,
            trust=tuple(str(t) for t in trust or ()),
            registry=registry,
            alias=alias,
            poll=poll,
            allow_contract_change=allow_contract_change,
            runtime=runtime,
        ),
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
    )


def stream(
    bundle: BundleArg = None,
    redis: Annotated[
        str, typer.Option("--redis", help="Redis URL, e.g. redis://localhost:6379/0.")
    ] = "redis://127.0.0.1:6379/0",
    input: Annotated[str, typer.Option("--input", help="Stream to read records from.")] = ...,  # type: ignore[assignment]
    output: Annotated[str, typer.Option("--output", help="Stream to write predictions to.")] = ...,  # type: ignore[assignment]
    dead: Annotated[
        str | None,
        typer.Option("--dead-letter", help="Stream for invalid messages (default: INPUT:dead)."),
    ] = None,
    group: Annotated[str, typer.Option("--group", help="Consumer group.")] = "mlrepro",
    consumer: Annotated[
        str | None,
        typer.Option(
            "--consumer",
            help="Consumer name in the group (default: the host name; keep it across restarts).",
        ),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", help="Messages per read.")] = 100,
    block_ms: Annotated[
        int,
        typer.Option(
            "--block-ms",
            help="How long one read waits for new messages (and a stop for a read).",
        ),
    ] = 1000,
    claim_idle_ms: Annotated[
        int,
        typer.Option("--claim-idle-ms", help="Claim other consumers' messages pending this long."),
    ] = 30_000,
    max_deliveries: Annotated[
        int,
        typer.Option("--max-deliveries", help="Dead-letter a message delivered this often."),
    ] = 5,
    start: Annotated[
        str,
        typer.Option("--start", help="Where a new group starts: 0 (whole stream) or $ (new)."),
    ] = "0",
    expect: Expect = None,
    trust: Trust = None,
    registry: RegistryOpt = None,
    alias: AliasOpt = None,
    poll: Poll = 2.0,
    allow_contract_change: AllowChange = False,
    runtime: RuntimeOpt = "auto",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final counts as JSON.")
    ] = False,
) -> None:
    """Predict records from a Redis stream into another; invalid ones go to a dead-letter stream."""
    _source(bundle, registry, alias, expect)
    _need("redis")
    from mlrepro.serving.stream import StreamSpec, run

    counts = run(
        StreamSpec(
            bundle=str(bundle) if bundle is not None else "",
            url=redis,
            input=input,
            output=output,
            dead=dead or f"{input}:dead",
            group=group,
            consumer=consumer,
            batch=batch,
            block_ms=block_ms,
            claim_idle_ms=claim_idle_ms,
            max_deliveries=max_deliveries,
            start=start,
            expect=expect,
            trust=tuple(str(t) for t in trust or ()),
            registry=registry,
            alias=alias,
            poll=poll,
            allow_contract_change=allow_contract_change,
            runtime=runtime,
        )
    )
    if as_json:
        sys.stdout.write(json.dumps(counts, indent=2, sort_keys=True) + "\n")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(stream)
