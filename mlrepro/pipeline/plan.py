"""Whether the lock is up to date, stage by stage (pure; the stages are in ``registry``).

A stage's key combines its code version, its parameter fingerprint and the fingerprints of
its inputs (the upstream outputs recorded in the lock): the lock is a Merkle chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlrepro.core.manifest import Manifest
from mlrepro.fingerprint import fingerprint_params
from mlrepro.pipeline.registry import STAGES, stages_for
from mlrepro.version import __version__


def code_version(stage: str) -> str:
    return f"mlrepro {__version__}; {stage} v{STAGES[stage].version}"


def stage_params(stage: str, m: Manifest) -> dict[str, Any]:
    """The manifest parameters a stage depends on (execution-only settings excluded)."""
    return STAGES[stage].params(m)


def stage_key(stage: str, params_fp: str, inputs: dict[str, str]) -> str:
    return fingerprint_params(
        {"stage": stage, "code": code_version(stage), "params": params_fp, "inputs": inputs}
    )


def upstream_inputs(stage: str, lock: dict[str, Any]) -> dict[str, str] | None:
    """Fingerprints of a stage's inputs from the lock; None if an upstream is missing."""
    out = {}
    for name, (up, up_out) in STAGES[stage].inputs.items():
        rec = lock["stages"].get(up, {}).get("outputs", {}).get(up_out)
        if not rec:
            return None
        out[name] = rec["fingerprint"]
    return out


@dataclass
class StageState:
    stage: str
    state: str  # "up to date" | "stale" | "missing"
    reason: str
    key: str | None = None
    params: dict[str, Any] | None = None
    params_fp: str | None = None
    inputs: dict[str, str] | None = None


def assess(
    stage: str, m: Manifest, lock: dict[str, Any], intact: Any, extra_inputs: dict | None = None
) -> StageState:
    """Compare the manifest and upstream records with the lock record of one stage.

    ``intact(record) -> bool`` checks an output artifact on disk (its bytes hash to the
    recorded ``file_hash``; the runner passes ``Store.is_unchanged``, which may answer from
    the stat cache, see ``project/statcache.py``).
    """
    params = stage_params(stage, m)
    params_fp = fingerprint_params(params)
    inputs = upstream_inputs(stage, lock)
    rec = lock["stages"].get(stage)
    if inputs is None:
        return StageState(
            stage, "missing", "an upstream stage has not run", None, params, params_fp
        )
    inputs = {**inputs, **(extra_inputs or {})}
    key = stage_key(stage, params_fp, inputs)
    state = StageState(stage, "up to date", "", key, params, params_fp, inputs)
    if not rec:
        state.state, state.reason = "missing", "never run"
    elif rec.get("code_version") != code_version(stage):
        state.state, state.reason = "stale", f"code changed ({rec.get('code_version')})"
    elif rec.get("params_fingerprint") != params_fp:
        changed = sorted(
            k
            for k in set(params) | set(rec.get("params", {}))
            if params.get(k) != rec.get("params", {}).get(k)
        )
        state.state, state.reason = "stale", f"parameters changed: {', '.join(changed)}"
    elif rec.get("inputs") != inputs:
        changed = sorted(k for k in inputs if inputs[k] != rec.get("inputs", {}).get(k))
        state.state, state.reason = "stale", f"inputs changed: {', '.join(changed)}"
    elif rec.get("key") != key:
        state.state, state.reason = "stale", "stage key changed"
    else:
        broken = [n for n, o in rec.get("outputs", {}).items() if not intact(o)]
        if broken:
            state.state = "stale"
            state.reason = f"output(s) missing or modified: {', '.join(sorted(broken))}"
    return state


__all__ = ["StageState", "assess", "code_version", "stage_key", "stage_params", "stages_for"]
