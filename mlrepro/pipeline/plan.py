"""Which stages exist, what each depends on, and whether the lock is up to date (pure).

A stage's key combines its code version, its parameter fingerprint and the fingerprints of
its inputs (the upstream outputs recorded in the lock): the lock is a Merkle chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlrepro.core.manifest import Manifest
from mlrepro.core.sources import redact
from mlrepro.fingerprint import fingerprint_params
from mlrepro.version import __version__

STAGE_VERSION = {"extract": 1, "features": 1, "select": 1, "train": 1, "predict": 1}

# stage -> {input name: (upstream stage, upstream output name)}
INPUTS: dict[str, dict[str, tuple[str, str]]] = {
    "extract": {},
    "features": {"snapshot": ("extract", "snapshot")},
    "select": {"matrix": ("features", "matrix")},
    "train": {
        "matrix": ("features", "matrix"),
        "transformer": ("features", "transformer"),
        "selector": ("select", "selector"),
    },
    "predict": {"pipeline": ("train", "pipeline")},
}


def stages_for(manifest: Manifest) -> list[str]:
    names = ["extract", "features", "select", "train"]
    if manifest.predict and (manifest.predict.input or manifest.predict.query):
        names.append("predict")
    return names


def code_version(stage: str) -> str:
    return f"mlrepro {__version__}; {stage} v{STAGE_VERSION[stage]}"


def _with_format(params: dict[str, Any], m: Manifest) -> dict[str, Any]:
    """Stages that save models re-run when model.format changes (joblib keeps old keys)."""
    if m.model.format != "joblib":
        params["model_format"] = m.model.format
    return params


def stage_params(stage: str, m: Manifest) -> dict[str, Any]:
    """The manifest parameters a stage depends on (execution-only settings excluded)."""
    raw = m.raw
    if stage == "extract":
        s = m.source
        return {
            "url": redact(s.url),
            "query": s.query,
            "timestamp_column": s.timestamp_column,
            "as_of": s.as_of_utc().isoformat(),
            "order_by": list(s.order_by),
        }
    if stage == "features":
        params = {
            "seed": m.seed,
            "target": m.target,
            "excluded": list(m.excluded_columns),
            "features": raw.get("features") or [],
            "plugins": list(m.plugins),
            "split": {
                "test_size": m.model.test_size,
                "stratify": m.model.stratify,
                "estimator": m.model.estimator,
            },
        }
        return _with_format(params, m)
    if stage == "select":
        params = {"seed": m.seed, "selection": raw.get("selection"), "estimator": m.model.estimator}
        return _with_format(params, m)
    if stage == "train":
        model = dict(raw.get("model") or {})
        return {"seed": m.seed, "model": model}
    if stage == "predict":
        p = m.predict
        return {k: redact(v) for k, v in vars(p).items() if v is not None} if p else {}
    raise KeyError(stage)


def stage_key(stage: str, params_fp: str, inputs: dict[str, str]) -> str:
    return fingerprint_params(
        {"stage": stage, "code": code_version(stage), "params": params_fp, "inputs": inputs}
    )


def upstream_inputs(stage: str, lock: dict[str, Any]) -> dict[str, str] | None:
    """Fingerprints of a stage's inputs from the lock; None if an upstream is missing."""
    out = {}
    for name, (up, up_out) in INPUTS[stage].items():
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

    ``intact(record) -> bool`` checks an output artifact on disk (hash of its bytes).
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
