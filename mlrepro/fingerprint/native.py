"""Canonical content of gradient-boosting models, from each library's own model dump.

LightGBM, XGBoost and CatBoost keep their trees in native memory: pickling them gives
opaque bytes that may carry a build stamp, a GUID or a training timestamp (CatBoost), so
two identical trainings would not fingerprint alike. Here each model is represented by its
documented text/JSON dump instead, with the fields that describe *when* or *how fast* it
was trained (not *what* it computes) left out.

Nothing is imported: an object is recognised only when its library is already loaded.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

# LightGBM model strings list every parameter as "[name: value]"; these only change how
# fast or how loudly it trains.
_LGBM_EXECUTION = ("[num_threads:", "[verbosity:", "[verbose:", "[n_jobs:")
# CatBoost model_info: build stamp, GUID, finish time and the output options (log folder,
# verbosity) differ between two identical trainings.
_CATBOOST_VOLATILE = ("catboost_version_info", "model_guid", "train_finish_time", "output_options")
# CatBoost's own estimator attributes that are execution-only.
_CATBOOST_EXECUTION = frozenset(
    {
        "thread_count",
        "verbose",
        "verbose_eval",
        "silent",
        "logging_level",
        "metric_period",
        "train_dir",
        "allow_writing_files",
        "save_snapshot",
        "snapshot_file",
        "snapshot_interval",
        "used_ram_limit",
    }
)


_CLASSES = (("lightgbm", "Booster"), ("xgboost", "Booster"), ("catboost", "CatBoost"))


def _class(module: str, name: str) -> type | None:
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) else None


def native_types() -> tuple[type, ...]:
    """The model classes of the boosting libraries that are loaded (subclasses included)."""
    return tuple(c for m, n in _CLASSES if (c := _class(m, n)) is not None)


def _is(obj: Any, module: str, name: str) -> bool:
    cls = _class(module, name)
    return cls is not None and isinstance(obj, cls)


def _lightgbm_booster(obj: Any) -> str:
    text = obj.model_to_string(num_iteration=-1)
    return "\n".join(line for line in text.splitlines() if not line.startswith(_LGBM_EXECUTION))


def _xgboost_booster(obj: Any) -> Any:
    return json.loads(bytes(obj.save_raw(raw_format="json")))


def _catboost_json(obj: Any) -> Any:
    fd, path = tempfile.mkstemp(prefix="mlrepro-catboost-", suffix=".json")
    os.close(fd)
    try:
        obj.save_model(path, format="json")
        with open(path, encoding="utf-8") as fh:
            model = json.load(fh)
    finally:
        os.unlink(path)
    info = model.get("model_info")
    if isinstance(info, dict):
        model["model_info"] = {k: v for k, v in info.items() if k not in _CATBOOST_VOLATILE}
        params = model["model_info"].get("params")
        if isinstance(params, dict):  # the training options: drop the execution-only ones
            model["model_info"]["params"] = _without_execution(params)
        elif params is not None:  # an older export: options as text we cannot filter
            model["model_info"].pop("params")
    return model


def _without_execution(options: Any) -> Any:
    """CatBoost training options without threads, logging and output settings."""
    if isinstance(options, dict):
        return {
            k: _without_execution(v)
            for k, v in options.items()
            if k not in _CATBOOST_EXECUTION and k != "system_options"
        }
    if isinstance(options, list):
        return [_without_execution(v) for v in options]
    return options


def _catboost(obj: Any) -> dict[str, Any]:
    # Only the parameters the user set and the model itself: the other Python attributes
    # are caches derived from the model (pickling drops some and zeroes others).
    params = vars(obj).get("_init_params")
    state: dict[str, Any] = {
        "params": {k: v for k, v in (params or {}).items() if k not in _CATBOOST_EXECUTION},
    }
    fitted = bool(getattr(obj, "is_fitted", lambda: False)())
    state["model"] = _catboost_json(obj) if fitted else None
    return state


def native_form(obj: Any) -> Any | None:
    """A plain (JSON-like or text) stand-in for a boosting model, or None if not one."""
    if _is(obj, "lightgbm", "Booster"):
        return _lightgbm_booster(obj)
    if _is(obj, "xgboost", "Booster"):
        return _xgboost_booster(obj)
    if _is(obj, "catboost", "CatBoost"):
        return _catboost(obj)
    return None
