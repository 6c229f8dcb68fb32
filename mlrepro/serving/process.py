"""Run the ``mlrepro serve`` API under uvicorn: verify first, then bind, then serve.

The bundle is loaded and verified before the port is bound, so a tampered or unreadable
bundle never serves (``ArtifactError``, exit 4). With ``workers > 1`` every worker process
loads the bundle again, pinned to the fingerprint verified here, so all of them serve the
very same model.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlrepro.errors import MlreproError, UsageError
from mlrepro.guards.safe_text import printable

SPEC_ENV = "MLREPRO_SERVE_SPEC"  # how worker processes learn what to load
STARTUP_FAILURE = 3  # uvicorn's exit code for a worker that could not start
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@dataclass(frozen=True)
class ServeSpec:
    bundle: str | None
    expect: str | None
    max_batch: int
    strict_env: bool = False  # refuse to start when a package that matters differs
    trust: tuple[str, ...] = ()  # public keys: refuse a bundle not signed by one of them
    registry: str | None = None  # follow ``alias`` in this registry instead of ``bundle``
    alias: str | None = None
    poll: float = 2.0
    allow_contract_change: bool = False
    runtime: str = "auto"  # what scores: the bundle's accelerated program, or scikit-learn


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a UsageError saying why the address cannot be used."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it Nagle + delayed ACKs add ~40 ms to every response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = {
            errno.EADDRINUSE: "is already in use",
            errno.EACCES: "needs more privileges",
            errno.EADDRNOTAVAIL: "is not an address of this machine",
        }.get(exc.errno or 0, f"cannot be used ({exc.strerror})")
        raise UsageError(
            f"{host}:{port} {why}", hint="pick another --port (or --host), or stop what uses it"
        ) from None
    except (socket.gaierror, OverflowError) as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc})", hint="check --host/--port"
        ) from None
    sock.set_inheritable(True)
    return sock


def load(spec: ServeSpec, report: Any = None) -> Any:
    """Load and verify the bundle; environment warnings go to ``report``."""
    from mlrepro.delivery.api import load_reporting

    def warn(msg: str) -> None:
        if report is not None:
            report(f"warning: {msg}")

    return load_reporting(
        spec.bundle,
        expect_fingerprint=spec.expect,
        report=warn,
        strict_env=spec.strict_env,
        trusted_keys=tuple(spec.trust),
        runtime=spec.runtime,
    )


def holder(spec: ServeSpec, report: Any = None) -> Any:
    """The ``ModelHolder`` to serve: the bundle, or the alias followed in the registry."""
    from mlrepro.serving.swap import ModelHolder

    if spec.registry is None:
        return ModelHolder.fixed(load(spec, report), spec.max_batch)
    return ModelHolder.follow(
        spec.registry,
        str(spec.alias),
        max_batch=spec.max_batch,
        trust=tuple(spec.trust),
        poll=spec.poll,
        allow_contract_change=spec.allow_contract_change,
        log=report,
        runtime=spec.runtime,
    )


def app_from_env() -> Any:
    """uvicorn factory for worker processes (``--workers N``)."""
    from mlrepro.serving.http import create_app

    spec = ServeSpec(**json.loads(os.environ[SPEC_ENV]))
    return create_app(holder(spec, _say), max_batch=spec.max_batch)


@contextmanager
def _graceful_signals() -> Iterator[None]:
    """After uvicorn's graceful shutdown it re-raises SIGTERM/SIGINT: absorb them (exit 0)."""
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, lambda *_: None) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _say(message: str) -> None:
    sys.stderr.write(f"mlrepro serve: {printable(message)}\n")
    sys.stderr.flush()


def run(
    spec: ServeSpec,
    *,
    host: str,
    port: int,
    workers: int = 1,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM; raises MlreproError if the server cannot start."""
    import uvicorn

    if workers < 1:
        raise UsageError(f"--workers {workers} is not valid", hint="use 1 or more worker processes")
    if spec.max_batch < 1:
        raise UsageError(f"--max-batch {spec.max_batch} is not valid", hint="use 1 or more")
    if log_level not in LOG_LEVELS:
        raise UsageError(f"--log-level {log_level} is not valid", hint=f"use one of {LOG_LEVELS}")
    models = holder(spec, _say)
    bundle = models.current.bundle
    if spec.registry is None:
        pinned = ServeSpec(
            str(Path(str(spec.bundle)).resolve()),
            bundle.fingerprint,
            spec.max_batch,
            trust=tuple(str(Path(t).resolve()) for t in spec.trust),
        )
    else:  # every worker follows the alias itself
        pinned = spec
    sock = bind(host, port)
    addr = sock.getsockname()
    where = f"http://{f'[{addr[0]}]' if ':' in addr[0] else addr[0]}:{addr[1]}"
    options: dict[str, Any] = {"log_level": log_level, "access_log": access_log}
    m = bundle.metadata
    _say(f"{m.project}: bundle {bundle.fingerprint} verified, model {m.model_fingerprint}")
    if models.following:
        st = models.status()
        _say(
            f"following alias {st['alias']!r} of {st['registry']} "
            f"({st['watch']}, every {st['poll_seconds']:g} s)"
        )
    if workers == 1:
        from mlrepro.serving.http import create_app

        server = uvicorn.Server(
            uvicorn.Config(create_app(models, max_batch=spec.max_batch), **options)
        )
        _say(f"listening on {where} (1 process; docs at {where}/docs)")
        with _graceful_signals():
            server.run(sockets=[sock])
        if not server.started:
            raise MlreproError("the server did not start", hint="see the messages above")
        _say("stopped")
        return
    from uvicorn.supervisors import Multiprocess

    models.close()  # each worker loads its own copy, pinned to the fingerprint verified here
    del bundle, models
    os.environ[SPEC_ENV] = json.dumps(asdict(pinned))
    config = uvicorn.Config(
        "mlrepro.serving.process:app_from_env", factory=True, workers=workers, **options
    )
    _say(f"listening on {where} ({workers} worker processes; docs at {where}/docs)")
    supervisor = Multiprocess(config, sockets=[sock])
    supervisor.run()
    _say("stopped")
    if any(p.process.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise MlreproError("a worker process could not start", hint="see the messages above")
