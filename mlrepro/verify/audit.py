"""Determinism audit: estimators the manifest leaves without a seed.

Every ``random_state`` the manifest does not set is derived from its ``seed`` (see
``resolve.seed_estimator``); one set to null on purpose stays unseeded, and its results
change from run to run.
"""

from __future__ import annotations

from mlrepro.core.manifest import Manifest


def seed_audit(m: Manifest) -> list[dict[str, str]]:
    """Estimators whose ``random_state`` the manifest sets to null (not reproducible)."""
    from mlrepro.core.resolve import build, unseeded

    steps = [
        (f"features[{i}] ({s.name})", f"features[{i}]", s.transformer, s.params)
        for i, s in enumerate(m.features)
    ]
    if m.selection:
        steps.append(("selection", "selection.method", m.selection.method, m.selection.params))
    steps.append(("model", "model.estimator", m.model.estimator, m.model.params))
    found = []
    for label, where, path, params in steps:
        est = build(path, params, m.allowed_prefixes(), where, m.seed)
        for name in unseeded(est):
            found.append(
                {
                    "where": f"{label}: params.{name.replace('__', '.')}",
                    "class": path,
                    "problem": "random_state is null: results change from run to run",
                    "fix": f"remove '{name.split('__')[-1]}: null' to derive it from 'seed'",
                }
            )
    return found
