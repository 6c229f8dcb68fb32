"""Turn class paths from the manifest into estimators, safely and reproducibly.

Only class paths under an allowed prefix (``sklearn.`` and the manifest's ``plugins``) are
imported. Every ``random_state`` the manifest leaves unset is derived from the global seed
and the step's name, so a pipeline is deterministic without the user seeding each step.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Collection
from typing import Any

import blake3

from mlrepro.errors import ManifestError


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


def _resolve_value(value: Any, prefixes: tuple[str, ...], where: str, seed: int) -> Any:
    """Nested estimators are written ``{class: path, params: {...}}``; callables as paths."""
    if isinstance(value, dict) and "class" in value and set(value) <= {"class", "params"}:
        return build(value["class"], value.get("params") or {}, prefixes, where, seed)
    if isinstance(value, str) and value.startswith(prefixes) and "." in value:
        obj = resolve_class(value, prefixes, where)
        if callable(obj) and not inspect.isclass(obj):
            return obj
        if inspect.isclass(obj) and hasattr(obj, "get_params"):  # an estimator class
            raise ManifestError(
                f"manifest field '{field(where)}': '{value}' is an estimator class, but a "
                "parameter needs an estimator object",
                hint=f"write it as {{class: {value}, params: {{}}}}",
            )
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
    cls = resolve_class(path, prefixes, where)
    if not inspect.isclass(cls):
        raise ManifestError(
            f"manifest field '{field(where)}': '{path}' is not a class",
            hint="name an estimator class",
        )
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
