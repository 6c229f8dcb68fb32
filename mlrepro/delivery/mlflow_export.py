"""``mlrepro export --mlflow DIR``: an MLflow model (pyfunc flavour) around a verified bundle.

The MLflow model holds the bundle file itself (``artifacts/``), an input signature built
from the schema recorded at extract time, and the fingerprints as model metadata. Optionally
the run's parameters, metrics and fingerprints are logged to an MLflow tracking server.
MLflow is an optional dependency: ``pip install 'mlrepro[mlflow]'``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlrepro.errors import MlreproError, SourceError, UsageError
from mlrepro.version import __version__

# pandas dtypes of the recorded schema -> MLflow column types
_TYPES = {
    "int8": "integer",
    "int16": "integer",
    "int32": "integer",
    "int64": "long",
    "uint8": "integer",
    "uint16": "integer",
    "uint32": "long",
    "float32": "float",
    "float64": "double",
    "bool": "boolean",
    "str": "string",
    "object": "string",
}


def require_mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise UsageError(
            "MLflow is not installed, so mlrepro cannot write an MLflow model",
            hint="pip install 'mlrepro[mlflow]' (or mlflow / mlflow-skinny)",
        ) from None
    return mlflow


def mlflow_type(dtype: str) -> str:
    """The MLflow type of a recorded pandas dtype (unknown dtypes are strings)."""
    d = dtype.lower()
    if d.startswith(("datetime", "timestamp")):
        return "datetime"
    return _TYPES.get(d, "double" if d.startswith("float") else "string")


def signature(bundle: Any) -> Any:
    """Input: the model's columns (required unless nullable) and the optional id columns."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, Schema

    from mlrepro.predict.contract import column_specs

    schema_yaml = bundle.contract.schema_yaml
    inputs: list[Any] = [
        ColSpec(mlflow_type(c.dtype), c.name, required=not c.nullable) for c in bundle.columns
    ]
    known = {c.name for c in bundle.columns}
    ids = [c for c in bundle.metadata.id_columns if c not in known]
    for spec in column_specs(schema_yaml, ids):
        inputs.append(ColSpec(mlflow_type(spec["dtype"]), spec["name"], required=False))
    label = "double" if bundle.metadata.task == "regression" else "string"
    from mlrepro.predict.scoring import output_columns

    probas = output_columns(bundle.metadata.task, bundle.metadata.classes)[1:]
    outputs: list[Any] = [ColSpec(label, "prediction")]
    outputs += [ColSpec("double", name) for name in probas]
    outputs.append(ColSpec("string", "model_fingerprint"))
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def _requirements() -> list[str]:
    from importlib import metadata

    reqs = [f"mlrepro=={__version__}"]
    for dist in ("scikit-learn", "pandas", "numpy", "pyarrow", "pandera", "blake3", "joblib"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow's advice (type hints, input examples) is about hand-written models: hide it."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def check_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(
            f"{target} already exists and is not an empty folder",
            hint="give a new folder for the MLflow model, or remove the old one",
        )
    if not target.parent.exists():
        raise UsageError(
            f"folder {target.parent} does not exist", hint="create it first, or pick another path"
        )


def export(
    bundle_path: Path,
    target: Path,
    *,
    expect: str | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
) -> dict[str, Any]:
    """Write the MLflow model to ``target`` (a new folder); log a run when asked."""
    from mlrepro.delivery.api import load_bundle
    from mlrepro.delivery.bundle import LOCK, read_verified

    mlflow = require_mlflow()
    target = Path(target)
    check_target(target)
    bundle = load_bundle(bundle_path, expect_fingerprint=expect, check_environment=False)
    from mlrepro.delivery.mlflow_pyfunc import BUNDLE_ARTIFACT, FINGERPRINT_KEY, MODEL_CODE

    m = bundle.metadata
    meta = {
        "mlrepro_version": __version__,
        "project": m.project,
        "bundle_fingerprint": bundle.fingerprint,
        "model_fingerprint": m.model_fingerprint,
        "fingerprints": {k: dict(v) for k, v in m.fingerprints.items()},
        "as_of": m.as_of,
        "task": m.task,
        "target": m.target,
    }
    staging = Path(tempfile.mkdtemp(prefix=".mlrepro-export-", dir=target.parent))
    try:
        bundle_copy = staging / f"{m.project}.mlrepro"
        shutil.copyfile(bundle.path, bundle_copy)
        # the copy is the file the MLflow model will serve: verify it, pinned
        read_verified(bundle_copy, bundle.fingerprint)
        model_dir = staging / "model"
        code = staging / "model.py"
        code.write_text(MODEL_CODE, encoding="utf-8")
        with _quiet_mlflow():
            mlflow.pyfunc.save_model(
                path=str(model_dir),
                python_model=str(code),
                artifacts={BUNDLE_ARTIFACT: str(bundle_copy)},
                model_config={FINGERPRINT_KEY: bundle.fingerprint},
                signature=signature(bundle),
                metadata={"mlrepro": meta},
                pip_requirements=_requirements(),
            )
        if target.exists():
            target.rmdir()
        os.replace(model_dir, target)
    except MlreproError:
        raise
    except Exception as exc:  # MLflow could not write the model
        raise UsageError(
            f"MLflow could not write the model to {target}: {type(exc).__name__}: {exc}"[:500],
            hint="check the folder and the installed MLflow version",
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    info: dict[str, Any] = {
        "mlflow_model": str(target),
        "bundle_fingerprint": bundle.fingerprint,
        "model_fingerprint": m.model_fingerprint,
        "project": m.project,
        "run_id": None,
    }
    if tracking_uri:
        lock = read_verified(bundle.path, bundle.fingerprint).json(LOCK)
        try:
            info["run_id"] = log_run(
                mlflow, tracking_uri, experiment or m.project, meta, lock, target
            )
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)  # all or nothing: no model without its run
            raise
        info["tracking_uri"] = tracking_uri
    return info


def flat_params(lock: dict[str, Any]) -> dict[str, str]:
    """``stage.key.sub`` -> value of every recorded parameter (MLflow's 6000-char limit)."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        else:
            out[prefix[:250]] = str(value)[:6000]

    stages = lock.get("stages") if isinstance(lock, dict) else None
    for stage, rec in (stages if isinstance(stages, dict) else {}).items():
        params = rec.get("params") if isinstance(rec, dict) else None
        if isinstance(params, dict):
            walk(str(stage), params)
    return out


def log_run(
    mlflow: Any, uri: str, experiment: str, meta: dict[str, Any], lock: Any, model_dir: Path
) -> str:
    """Log parameters, metrics, fingerprints and the MLflow model as one run."""
    from mlrepro.redaction import redact

    train = ((lock or {}).get("stages") or {}).get("train") or {}
    metrics = {
        k: float(v)
        for k, v in ((train.get("details") or {}).get("metrics") or {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    tags = {
        "mlrepro.project": meta["project"],
        "mlrepro.bundle_fingerprint": meta["bundle_fingerprint"],
        "mlrepro.model_fingerprint": meta["model_fingerprint"],
        "mlrepro.as_of": meta["as_of"],
    }
    for stage, outs in meta["fingerprints"].items():
        for name, fp in outs.items():
            tags[f"mlrepro.{stage}.{name}"] = fp
    try:
        mlflow.set_tracking_uri(uri)
        with _quiet_mlflow():
            mlflow.set_experiment(experiment)
        with mlflow.start_run(run_name=meta["project"]) as run:
            params = flat_params(lock)
            keys = list(params)
            for i in range(0, len(keys), 100):  # MLflow takes at most 100 params per batch
                mlflow.log_params({k: params[k] for k in keys[i : i + 100]})
            if metrics:
                mlflow.log_metrics(metrics)
            mlflow.set_tags(tags)
            mlflow.log_artifacts(str(model_dir), artifact_path="model")
            return str(run.info.run_id)
    except Exception as exc:
        raise SourceError(
            f"could not log the run to MLflow tracking {redact(uri)}: {type(exc).__name__}: "
            f"{redact(str(exc))}"[:500],
            hint="check --tracking-uri (a server URL; a local file:///path store needs "
            "MLFLOW_ALLOW_FILE_STORE=true with MLflow 3)",
        ) from None
