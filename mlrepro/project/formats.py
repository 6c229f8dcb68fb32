"""``model.format: skops``: models that load without running code from the file.

A pickle (joblib) can run any code when it is loaded; a skops file can only instantiate the
types its loader trusts. skops trusts scikit-learn estimators and plain data itself; every
other type in the file must be on mlrepro's reviewed list (``REVIEWED_TYPES``) or live in a
module the manifest lists under ``plugins:``. Saving records those types in the lock;
loading refuses a file that holds any type outside both the recorded list and the policy,
so neither a swapped file nor an edited lock can smuggle in a dangerous type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlrepro.errors import ArtifactError, ManifestError

# Types that skops does not trust by default and that mlrepro pipelines contain. Each was
# reviewed: loading it only restores fitted state and calls no code named by the file.
REVIEWED_TYPES = frozenset(
    {
        "mlrepro.transformers.FeatureSteps",
        "mlrepro.transformers.KeepColumns",
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        # score functions of univariate selection: stored as references, called only in fit
        "sklearn.feature_selection._univariate_selection.chi2",
        "sklearn.feature_selection._univariate_selection.f_classif",
        "sklearn.feature_selection._univariate_selection.f_regression",
        "sklearn.feature_selection._univariate_selection.r_regression",
        "sklearn.feature_selection._mutual_info.mutual_info_classif",
        "sklearn.feature_selection._mutual_info.mutual_info_regression",
    }
)
EXT = "skops"


def _skops() -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise ManifestError(
            "model.format: skops needs the skops package, which is not installed",
            hint="pip install 'mlrepro[skops]' (or pip install skops), or use format: joblib",
        ) from None
    return sio


def allowed(type_name: str, plugins: tuple[str, ...] = ()) -> bool:
    """Whether the policy trusts ``type_name``: reviewed, or from a manifest plugin module."""
    return type_name in REVIEWED_TYPES or any(type_name.startswith(f"{p}.") for p in plugins if p)


def _shown(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def dump(obj: Any, path: Path, plugins: tuple[str, ...] = ()) -> list[str]:
    """Write ``obj`` with skops; return the non-default types it holds (for the lock)."""
    sio = _skops()
    data = sio.dumps(obj)
    types = sorted(sio.get_untrusted_types(data=data))
    refused = [t for t in types if not allowed(t, plugins)]
    if refused:
        raise ManifestError(
            f"model.format: skops: the pipeline holds types mlrepro has not reviewed for "
            f"safe loading: {_shown(refused)}",
            hint="list their module under 'plugins:' if you trust it, or use format: joblib",
        )
    Path(path).write_bytes(data)
    return types


def load(path: Path, record: dict[str, Any], plugins: tuple[str, ...] = ()) -> Any:
    """Load a skops artifact whose bytes were already checked against ``record``."""
    sio = _skops()
    name = record.get("path", Path(path).name)
    recorded = record.get("trusted_types")
    if not isinstance(recorded, list) or not all(isinstance(t, str) for t in recorded):
        raise ArtifactError(
            f"artifact {name}: the lock records no list of trusted types for this skops file",
            hint="run 'mlrepro train --force' to save the model again",
        )
    outside = sorted(t for t in recorded if not allowed(t, plugins))
    if outside:
        raise ArtifactError(
            f"artifact {name}: the lock trusts types outside mlrepro's reviewed list: "
            f"{_shown(outside)}; refusing to load it",
            hint="the lock was edited: restore mlrepro.lock from version control, or list "
            "the module under 'plugins:' if you trust it",
        )
    try:
        present = sorted(sio.get_untrusted_types(file=path))
    except Exception as exc:  # not a zip / schema unreadable
        raise ArtifactError(
            f"artifact {name} is not a readable skops file ({type(exc).__name__})",
            hint="run 'mlrepro train --force' to save the model again",
        ) from None
    unexpected = [t for t in present if t not in recorded]
    if unexpected:
        raise ArtifactError(
            f"artifact {name} holds types not recorded in the lock: {_shown(unexpected)}; "
            "refusing to load it",
            hint="the file was replaced: delete it and run 'mlrepro run' to rebuild it",
        )
    try:
        return sio.load(path, trusted=present)
    except Exception as exc:
        raise ArtifactError(
            f"artifact {name} could not be loaded with skops ({type(exc).__name__})",
            hint="run 'mlrepro train --force' to save the model again",
        ) from None
