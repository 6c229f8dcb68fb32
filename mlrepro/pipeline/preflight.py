"""Checks that need scikit-learn but no data, run once before the first stage executes.

A misspelt estimator or parameter must fail in a second, not after an hour of extract, and
must leave the lock as it was. Only the classes of the stages about to run are checked: an
``mlrepro extract`` on its own resolves none (and imports no scikit-learn); ``mlrepro run``
checks every class before its first stage.
"""

from __future__ import annotations

from collections.abc import Collection

from mlrepro.core.manifest import Manifest
from mlrepro.core.resolve import build


def check_classes(m: Manifest, stages: Collection[str] | None = None) -> None:
    """Resolve the class paths and check the parameter names of ``stages`` (None: all of
    them); raises ManifestError."""

    def runs(name: str) -> bool:
        return stages is None or name in stages

    prefixes = m.allowed_prefixes()
    if runs("features"):
        for i, step in enumerate(m.features):
            build(step.transformer, step.params, prefixes, f"features[{i}]", m.seed)
    if m.selection is not None and runs("select"):
        build(m.selection.method, m.selection.params, prefixes, "selection.method", m.seed)
    if runs("train"):
        build(m.model.estimator, m.model.params, prefixes, "model.estimator", m.seed)
