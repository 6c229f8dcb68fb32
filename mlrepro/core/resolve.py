"""Turn class paths from the manifest into estimators, safely and reproducibly.

Only class paths under an allowed prefix (``sklearn.`` and the manifest's ``plugins``) are
imported, and only estimator classes are instantiated; a function passed as a parameter must
be on the reviewed allow-list of ``mlrepro.guards.callables`` or come from a plugin module.

Every ``random_state`` the manifest leaves unset is derived from the global seed
and the step's name, so a pipeline is deterministic without the user seeding each step.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Collection
from typing import Any

import blake3

from mlrepro.errors import ManifestError
from mlrepro.guards import callables


def derive_seed(seed: int, key: str) -> int:
    """A stable 31-bit seed for one step, derived from the global seed and a name."""
    digest = blake3.blake3(f"{seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def field(where: str) -> str:
    """The manifest field a ``where`` key names, for messages.

    ``where`` is also the key random seeds are derived from, so it keeps the class-path key
    (``model.estimator``) while the parameters live at ``model.params`` in the manifest.
    """
    for key, shown in (
        ("model.estimator.params", "model.params"),
        ("selection.method.params", "selection.params"),
    ):
        if where == key or where.startswith(key + "."):
            return shown + where[len(key) :]
    return where


def resolve_class(path: str, prefixes: tuple[str, ...], where: str) -> Any:
    if not any(path == p or path.startswith(p + ".") or path.startswith(p) for p in prefixes):
        raise ManifestError(
            f"manifest field '{field(where)}': class path '{path}' is not allowed",
            hint="use scikit-learn ('sklearn.') or list your module under 'plugins:'",
        )
    where = field(where)
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ManifestError(
            f"manifest field '{where}': cannot import module '{module_name}' ({exc})",
            hint="check the spelling of the class path, or install the plugin package",
        ) from None
    obj = getattr(module, attr, None)
    if obj is None:
        names = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(attr, names, n=1)
        raise ManifestError(
            f"manifest field '{where}': '{module_name}' has no attribute '{attr}'",
            hint=f"did you mean '{module_name}.{close[0]}'?" if close else "check the class path",
        )
    return obj


def _plugins(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """The manifest's plugin modules, from ``Manifest.allowed_prefixes()``."""
    return tuple(p.rstrip(".") for p in prefixes if p.rstrip(".") + "." not in ALLOWED)


ALLOWED = ("sklearn.",)


def _parameter(where: str) -> str:
    """The parameter a ``where`` key names: ``features[0].params.func[1]`` -> ``func``."""
    return re.sub(r"(\[\d+\])+$", "", where.rsplit(".", 1)[-1])


def _looks_like_callable(value: str, prefixes: tuple[str, ...], where: str) -> bool:
    if "." not in value or any(c.isspace() for c in value):
        return False
    if _parameter(where) in callables.BY_PARAMETER:  # a function slot: any dotted name
        return True
    return value.startswith(prefixes) or value.split(".", 1)[0] in callables.FUNCTION_ROOTS


def _resolve_function(value: str, prefixes: tuple[str, ...], where: str) -> Any:
    """A function named as a parameter: reviewed, or from a plugin module."""
    parameter = _parameter(where)
    plugins = _plugins(prefixes)
    if callables.is_reviewed(value, parameter) or callables.from_plugin(value, plugins):
        module_name, _, attr = value.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module_name), attr, None)
        except ImportError as exc:
            raise ManifestError(
                f"manifest field '{field(where)}': cannot import module '{module_name}' ({exc})",
                hint="check the spelling of the function path, or install the plugin package",
            ) from None
        if obj is not None and callable(obj) and not inspect.isclass(obj):
            return obj
    elif value.startswith(prefixes):  # an estimator class written as a string?
        obj = resolve_class(value, prefixes, where)
        if inspect.isclass(obj) and hasattr(obj, "get_params"):
            raise ManifestError(
                f"manifest field '{field(where)}': '{value}' is an estimator class, but a "
                "parameter needs an estimator object",
                hint=f"write it as {{class: {value}, params: {{}}}}",
            )
    raise ManifestError(
        f"manifest field '{field(where)}': '{value}' is not a reviewed function for '{parameter}'",
        hint=f"allowed: {callables.describe(parameter)}",
    )


def _resolve_value(value: Any, prefixes: tuple[str, ...], where: str, seed: int) -> Any:
    """Nested estimators are written ``{class: path, params: {...}}``; callables as paths."""
    if isinstance(value, dict) and "class" in value and set(value) <= {"class", "params"}:
        return build(value["class"], value.get("params") or {}, prefixes, where, seed)
    if isinstance(value, str) and _looks_like_callable(value, prefixes, where):
        return _resolve_function(value, prefixes, where)
    if isinstance(value, list):
        return [_resolve_value(v, prefixes, f"{where}[{i}]", seed) for i, v in enumerate(value)]
    return value


def takes_any_keyword(cls: Any) -> bool:
    """True for classes whose constructor takes ``**kwargs`` (LightGBM, XGBoost, CatBoost).

    Their parameters cannot be checked against the signature: the library checks them.
    """
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def is_estimator_class(cls: type) -> bool:
    """A subclass of scikit-learn's ``BaseEstimator`` (found by name: core imports no sklearn)."""
    return any(
        b.__name__ == "BaseEstimator" and b.__module__.startswith("sklearn.")
        for b in inspect.getmro(cls)
    )


def _check_estimator_class(cls: Any, path: str, prefixes: tuple[str, ...], where: str) -> None:
    """Only estimator, transformer and selector classes are instantiated."""
    if inspect.isclass(cls) and is_estimator_class(cls):
        return
    plugin = callables.from_plugin(path, _plugins(prefixes))
    if (
        plugin
        and inspect.isclass(cls)
        and callable(getattr(cls, "fit", None))
        and callable(getattr(cls, "get_params", None))
    ):
        return
    raise ManifestError(
        f"manifest field '{field(where)}': '{path}' is not an estimator, transformer or "
        "selector class",
        hint="name a scikit-learn estimator class (a BaseEstimator subclass), or a plugin "
        "class with fit() and get_params()",
    )


def accepted_params(cls: Any) -> list[str]:
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return []
    return [
        n
        for n, p in sig.parameters.items()
        if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def build(
    path: str, params: dict[str, Any], prefixes: tuple[str, ...], where: str, seed: int
) -> Any:
    """Instantiate ``path(**params)``, validating parameter names and seeding randomness."""
    if not isinstance(path, str):
        raise ManifestError(
            f"manifest field '{field(where)}': expected a class path, found {type(path).__name__}",
            hint="name an estimator class, e.g. sklearn.preprocessing.StandardScaler",
        )
    cls = resolve_class(path, prefixes, where)
    if not inspect.isclass(cls):
        raise ManifestError(
            f"manifest field '{field(where)}': '{path}' is not a class",
            hint="name an estimator class",
        )
    _check_estimator_class(cls, path, prefixes, where)
    accepted = [] if takes_any_keyword(cls) else accepted_params(cls)
    for name in params:
        if accepted and name not in accepted:
            close = difflib.get_close_matches(name, accepted, n=1)
            raise ManifestError(
                f"manifest field '{field(f'{where}.params.{name}')}': {cls.__name__} has no "
                f"parameter '{name}'",
                hint=f"did you mean '{close[0]}'?"
                if close
                else f"valid parameters: {', '.join(accepted)}",
            )
    kwargs = {
        k: _resolve_value(v, prefixes, f"{where}.params.{k}", seed) for k, v in params.items()
    }
    try:
        est = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ManifestError(
            f"manifest field '{field(where)}': cannot create {cls.__name__}: {exc}",
            hint=f"check the parameters against the documentation of {path}",
        ) from None
    seed_estimator(est, seed, where, explicit=set(params))
    return est


def seed_estimator(
    est: Any, seed: int, key: str, explicit: Collection[str] = frozenset()
) -> dict[str, Any]:
    """Set every unset ``random_state`` (also nested ones) from the global seed."""
    if not hasattr(est, "get_params"):
        return {}
    derived = {}
    for name, value in est.get_params(deep=True).items():
        if (name == "random_state" or name.endswith("__random_state")) and value is None:
            if name in explicit:  # the manifest set it to null on purpose: audit flags it
                continue
            derived[name] = derive_seed(seed, f"{key}/{name}")
    if derived:
        est.set_params(**derived)
    return derived


def unseeded(est: Any) -> list[str]:
    """Parameters named random_state that are still None (non-deterministic)."""
    if not hasattr(est, "get_params"):
        return []
    return sorted(
        n
        for n, v in est.get_params(deep=True).items()
        if (n == "random_state" or n.endswith("__random_state")) and v is None
    )
