"""Capture the environment a stage ran in, and diff two captures."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

PACKAGES = (
    "mlrepro",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "joblib",
    "pyarrow",
    "pandera",
    "sqlalchemy",
    "blake3",
    "threadpoolctl",
)
#: Gradient-boosting libraries (tested as plugins): recorded when the project's plugins
#: name them (only then: whether some other code loaded them must not change the record).
BOOSTING = ("lightgbm", "xgboost", "catboost")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def capture(
    extra_modules: tuple[str, ...] = (), also: tuple[str, ...] | list[str] = ()
) -> dict[str, Any]:
    """Python, platform and versions of the packages that change results.

    ``extra_modules`` are the manifest's plugin modules (their distributions are recorded);
    ``also`` names more distributions, e.g. every package a recording lists, so comparing
    with it does not report a plugin as "absent" just because nobody asked for it.
    """
    packages = {name: _version(name) for name in PACKAGES}
    for name in also:
        packages[name] = _version(name)
    tops = {mod.split(".")[0] for mod in extra_modules}
    if tops:
        owners = metadata.packages_distributions()
        for top in sorted(tops):  # plugin modules: record their distribution if known
            for dist in owners.get(top, [top] if top in BOOSTING else []):
                packages[dist] = _version(dist)
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": {k: v for k, v in sorted(packages.items()) if v is not None},
    }


def capture_like(recorded: dict[str, Any]) -> dict[str, Any]:
    """The current environment, with every package ``recorded`` lists looked up too."""
    return capture(also=sorted(recorded.get("packages", {}) or {}))


def diff(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences, e.g. ``scikit-learn: 1.4.2 -> 1.5.0``."""
    out = []
    for key in ("python", "implementation", "platform", "machine"):
        if recorded.get(key) != current.get(key):
            out.append(f"{key}: {recorded.get(key)} -> {current.get(key)}")
    rp, cp = recorded.get("packages", {}), current.get("packages", {})
    for name in sorted(set(rp) | set(cp)):
        if rp.get(name) != cp.get(name):
            out.append(f"{name}: {rp.get(name, 'absent')} -> {cp.get(name, 'absent')}")
    return out
