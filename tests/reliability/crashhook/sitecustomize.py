"""Test-only fault injection: Python's ``site`` imports this when its folder is on PYTHONPATH.

It does nothing unless ``MLREPRO_CRASH`` is set:

    MLREPRO_CRASH=trace          append every event to the file MLREPRO_CRASH_LOG
    MLREPRO_CRASH=kill@N         SIGKILL this process at the N-th event (1-based)
    MLREPRO_CRASH=int@N          send SIGINT to this process at the N-th event
    MLREPRO_CRASH=pause@N        at the N-th event create MLREPRO_CRASH_LOG + ".paused" and
                                 wait until MLREPRO_CRASH_LOG + ".go" exists

Events are the moments a crash can hit: a stage starting, a parquet batch or a model being
written, every fsync, before and after every rename, the lock write and the final prune.
Each is named ``<stage>:<event>`` so tests can spread crashes over all stages. Writes of the
two best-effort caches beside the lock (the stat cache, the environment cache) are not
events: whether they happen depends on timing (files younger than the settle time are not
cached), so counting them would shift the N-th event from one run to the next.
"""

import dataclasses
import os

_SPEC = os.environ.get("MLREPRO_CRASH", "")


def _install() -> None:
    import functools
    import signal
    import time
    from pathlib import Path

    log = Path(os.environ.get("MLREPRO_CRASH_LOG", "crash.log"))
    action, _, nth = _SPEC.partition("@")
    target = int(nth) if nth else 0
    state = {"count": 0, "stage": "-", "quiet": 0}

    def event(name: str) -> None:
        if state["quiet"]:
            return
        state["count"] += 1
        label = f"{state['stage']}:{name}"
        if action == "trace":
            with open(log, "a") as fh:
                fh.write(label + "\n")
            return
        if state["count"] != target:
            return
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "int":
            os.kill(os.getpid(), signal.SIGINT)
        elif action == "pause":
            Path(str(log) + ".paused").write_text(label)
            while not Path(str(log) + ".go").exists():
                time.sleep(0.02)

    def wrap(owner, attr, name, after=False):
        original = getattr(owner, attr)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            event(f"{name}:before" if after else name)
            result = original(*args, **kwargs)
            if after:
                event(f"{name}:after")
            return result

        setattr(owner, attr, wrapper)

    def quiet(owner, attr):
        original = getattr(owner, attr)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            state["quiet"] += 1
            try:
                return original(*args, **kwargs)
            finally:
                state["quiet"] -= 1

        setattr(owner, attr, wrapper)

    import joblib
    import pyarrow.parquet as pq

    from mlrepro.environment import cache as env_cache
    from mlrepro.pipeline import registry
    from mlrepro.project import lockfile, statcache, store

    wrap(os, "fsync", "fsync")
    wrap(os, "replace", "rename", after=True)
    wrap(pq.ParquetWriter, "write_batch", "parquet-batch")
    wrap(pq.ParquetWriter, "write_table", "parquet-table")
    wrap(pq, "write_table", "parquet-file")
    wrap(joblib, "dump", "model-dump")
    wrap(lockfile, "write", "lock-write")
    wrap(store.Store, "prune", "prune")
    quiet(statcache.StatCache, "save")
    quiet(env_cache, "store")

    def starting(stage_def):
        def execute(ctx):
            state["stage"] = stage_def.name
            event("start")
            return stage_def.execute(ctx)

        return dataclasses.replace(stage_def, execute=execute)

    for name, stage_def in list(registry.STAGES.items()):
        registry.STAGES[name] = starting(stage_def)


if _SPEC:
    _install()
