"""Checks that need scikit-learn but no data, run once before the first stage executes.

A misspelt estimator or parameter must fail in a second, not after an hour of extract, and
must leave the lock as it was.
"""

from __future__ import annotations

from mlrepro.core.manifest import Manifest
from mlrepro.core.resolve import build


def check_classes(m: Manifest) -> None:
    """Resolve every class path and check every parameter name (raises ManifestError)."""
    prefixes = m.allowed_prefixes()
    for i, step in enumerate(m.features):
        build(step.transformer, step.params, prefixes, f"features[{i}]", m.seed)
    if m.selection is not None:
        build(m.selection.method, m.selection.params, prefixes, "selection.method", m.seed)
    build(m.model.estimator, m.model.params, prefixes, "model.estimator", m.seed)
