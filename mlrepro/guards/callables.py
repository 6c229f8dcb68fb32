"""The reviewed allow-list of functions a manifest may pass as a parameter.

A manifest names classes and functions by dotted path, and a manifest may come from someone
else. A prefix rule ("anything under ``sklearn.``") is not enough: ``sklearn.datasets.
dump_svmlight_file`` writes files, ``sklearn.utils`` holds helpers that were never meant
to be called on data. So:

- a **class path** must name an estimator class (a scikit-learn ``BaseEstimator``
  subclass, or a plugin class with ``fit`` and ``get_params``), checked before it is
  instantiated;
- a **function given as a parameter** (``func``, ``inverse_func``, ``score_func``, a metric
  or kernel callable...) must be on the short list below, or come from a module the
  manifest lists under ``plugins:``;
- a ``plugins:`` module is code the project owner asks you to trust (mlrepro imports it and
  calls it); the standard library and mlrepro's own dependencies are never plugins.

Keep the lists small: each entry was checked to be a pure function of its array inputs
that neither reads nor writes files, nor runs code given as data.
"""

from __future__ import annotations

import sys

# Univariate score functions of sklearn.feature_selection: (X, y) -> scores[, p-values].
SCORE_FUNCTIONS = frozenset(
    f"sklearn.feature_selection.{name}"
    for name in (
        "chi2",
        "f_classif",
        "f_regression",
        "r_regression",
        "mutual_info_classif",
        "mutual_info_regression",
    )
)

# Element-wise numpy ufuncs, for FunctionTransformer / TransformedTargetRegressor.
ELEMENTWISE = frozenset(
    f"numpy.{name}"
    for name in (
        "abs",
        "absolute",
        "arcsinh",
        "arctan",
        "cbrt",
        "exp",
        "exp2",
        "expm1",
        "log",
        "log10",
        "log1p",
        "log2",
        "negative",
        "reciprocal",
        "sign",
        "sinh",
        "sqrt",
        "square",
        "tanh",
    )
)

# Pairwise kernels and distances (``metric=`` / ``kernel=`` callables).
PAIRWISE = frozenset(
    f"sklearn.metrics.pairwise.{name}"
    for name in (
        "cosine_similarity",
        "euclidean_distances",
        "laplacian_kernel",
        "linear_kernel",
        "manhattan_distances",
        "polynomial_kernel",
        "rbf_kernel",
        "sigmoid_kernel",
    )
)

# Which list a parameter draws from; any other parameter may use any reviewed function.
BY_PARAMETER = {
    "score_func": SCORE_FUNCTIONS,
    "func": ELEMENTWISE,
    "inverse_func": ELEMENTWISE,
    "metric": PAIRWISE,
    "kernel": PAIRWISE,
}
ALL_REVIEWED = SCORE_FUNCTIONS | ELEMENTWISE | PAIRWISE
# a parameter string starting with one of these (or with a class prefix) names a function
FUNCTION_ROOTS = ("numpy", "np", "scipy", "sklearn")

# Never plugins: their functions are exactly what the allow-list keeps out.
NOT_PLUGINS = frozenset(
    {
        "mlrepro",
        "sklearn",
        "numpy",
        "scipy",
        "pandas",
        "joblib",
        "cloudpickle",
        "pyarrow",
        "sqlalchemy",
        "yaml",
        "pandera",
        "typer",
        "click",
        "rich",
        "blake3",
        "skops",
        "fastapi",
        "uvicorn",
        "starlette",
        "pydantic",
        "redis",
        "dask",
        "distributed",
        "filelock",
        "setuptools",
        "pip",
        "pytest",
        "_pytest",
        "IPython",
    }
)


def plugin_problem(module: str) -> str | None:
    """Why ``module`` cannot be a plugin, or None."""
    top = module.split(".", 1)[0]
    if top in getattr(sys, "stdlib_module_names", ()) or top in sys.builtin_module_names:
        return "is part of the Python standard library"
    if top in NOT_PLUGINS:
        return "is a library mlrepro itself uses, not a plugin"
    return None


def allowed_for(parameter: str) -> frozenset[str]:
    """The reviewed functions a parameter named ``parameter`` may take."""
    return BY_PARAMETER.get(parameter, ALL_REVIEWED)


def is_reviewed(path: str, parameter: str) -> bool:
    return path in allowed_for(parameter)


def from_plugin(path: str, plugins: tuple[str, ...]) -> bool:
    return any(path.startswith(f"{p}.") for p in plugins if p)


def describe(parameter: str, limit: int = 40) -> str:
    """The allowed choices, for a hint."""
    names = sorted(allowed_for(parameter))
    shown = ", ".join(names[:limit]) + (
        f", ... ({len(names)} in all)" if len(names) > limit else ""
    )
    return f"{shown}; or a function of a module listed under 'plugins:'"
