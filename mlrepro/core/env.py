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


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def capture(extra_modules: tuple[str, ...] = ()) -> dict[str, Any]:
    """Python, platform and versions of the packages that change results."""
    packages = {name: _version(name) for name in PACKAGES}
    for mod in extra_modules:  # plugin modules: record their distribution if known
        top = mod.split(".")[0]
        for dist in metadata.packages_distributions().get(top, []):
            packages[dist] = _version(dist)
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": {k: v for k, v in sorted(packages.items()) if v is not None},
    }


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
