"""``run`` / ``status`` without typer: the commands' bodies, and a fast path for the no-ops.

Building the typer app costs more than a no-op ``run`` itself (typer coerces parameters
through pydantic, ~0.1 s to import). ``fast(args)`` recognises a small grammar —
``status``, ``run`` and the stage commands with ``-p/--project``, ``--json``, ``-q/--quiet``
and ``--wait`` only, and ``--version`` — and answers without importing typer. The bodies
(``run_stages``, ``show_status``) are the very functions the typer commands call, so output,
``--json`` and exit codes are the same by construction. ``run`` takes the fast path only
when every stage it would run is up to date: otherwise ``fast`` returns None before anything
is written or printed, and the typer app runs the command. Anything else (``--help``, an
unknown option, a malformed value) also returns None: typer parses and reports it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from mlrepro.errors import MlreproError
from mlrepro.version import __version__

STAGE_COMMANDS = ("run", "extract", "features", "select", "train")
_NUMBER = re.compile(r"\d+(\.\d*)?|\.\d+")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def wants_json(argv: list[str]) -> bool:
    return "--json" in argv or any(
        a == "--format=json" or (a == "--format" and argv[i + 1 : i + 2] == ["json"])
        for i, a in enumerate(argv)
    )


def report_failure(exc: Exception, args: list[str]) -> int:
    """Report an error (an MlreproError, or an unexpected one made into it); its exit code."""
    from mlrepro.cli.console import print_error
    from mlrepro.core.failsafe import as_error

    error = exc if isinstance(exc, MlreproError) else as_error(exc)
    if wants_json(args):
        emit_json(error.to_dict())
    print_error(error)
    return error.exit_code


def run_stages(
    project: Path | None,
    stages: list[str] | None,
    force: bool,
    as_json: bool,
    quiet: bool,
    wait: float,
    *,
    only_if_noop: bool = False,
) -> bool:
    """Run ``stages`` (None: the pipeline). ``only_if_noop``: return False, having done and
    printed nothing, unless every one of them is up to date."""
    from mlrepro.cli.console import Console
    from mlrepro.core import manifest as manifest_mod
    from mlrepro.pipeline.runner import Runner
    from mlrepro.project.locking import project_lock

    m = manifest_mod.load(project)
    ui = Console(quiet=quiet or as_json)
    with project_lock(m.root, wait) as held:
        runner = Runner(m, report=ui.report, progress=ui.progress)
        if only_if_noop or not held.writable:
            pending = [s for s in runner.status() if force or s.state != "up to date"]
            pending = [s for s in pending if stages is None or s.stage in stages]
            if pending and only_if_noop:
                return False
            if pending:
                first = pending[0]
                why = "--force" if force else (first.reason or first.state)
                raise held.refuse(f"stage '{first.stage}' would run ({why})")
        results = runner.run(stages, force=force)
        if stages is None and held.writable:
            runner.finish()
    if as_json:
        emit_json({"project": m.name, "stages": [r.to_dict() for r in results]})
    else:
        ui.summary(results)
    return True


def show_status(project: Path | None, as_json: bool) -> None:
    from mlrepro.core import manifest as manifest_mod
    from mlrepro.pipeline.runner import Runner

    m = manifest_mod.load(project)
    states = Runner(m).status()
    if as_json:
        emit_json(
            {
                "project": m.name,
                "stages": [
                    {"stage": s.stage, "state": s.state, "reason": s.reason} for s in states
                ],
            }
        )
    else:
        from mlrepro.cli.console import Console

        Console().status(m, states)


def _parse(args: list[str]) -> dict[str, Any] | None:
    """The options of ``args[0]`` if all are in the fast grammar, else None."""
    command, rest = args[0], args[1:]
    flags = {"--json": "as_json"}
    valued = {"-p": "project", "--project": "project"}
    if command in STAGE_COMMANDS:
        flags.update({"-q": "quiet", "--quiet": "quiet"})
        valued["--wait"] = "wait"
    opts: dict[str, Any] = {"project": None, "as_json": False, "quiet": False, "wait": 0.0}
    i = 0
    while i < len(rest):
        arg = rest[i]
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if not eq and name in flags:
            opts[flags[name]] = True
        elif name in valued:
            if not eq:
                i += 1
                if i == len(rest):
                    return None
                value = rest[i]
            if not value or value.startswith("-"):
                return None  # typer decides what a missing or dash-led value means
            if valued[name] == "wait":
                if not _NUMBER.fullmatch(value):
                    return None
                opts["wait"] = float(value)
            else:
                opts["project"] = Path(value)
        else:
            return None
        i += 1
    return opts


def fast(args: list[str]) -> int | None:
    """Exit code of a command answered without typer, or None: let the typer app run it."""
    if args == ["--version"]:
        sys.stdout.write(f"mlrepro {__version__}\n")
        return 0
    if not args or (args[0] not in STAGE_COMMANDS and args[0] != "status"):
        return None
    opts = _parse(args)
    if opts is None:
        return None
    try:
        if args[0] == "status":
            show_status(opts["project"], opts["as_json"])
            return 0
        stages = None if args[0] == "run" else [args[0]]
        done = run_stages(
            opts["project"],
            stages,
            False,
            opts["as_json"],
            opts["quiet"],
            opts["wait"],
            only_if_noop=True,
        )
    except Exception as exc:
        return report_failure(exc, args)
    return 0 if done else None
