"""mlrepro: reproducible ML pipelines from research to production.

``from mlrepro import load_bundle`` is the embedded API (see ``mlrepro.delivery.api``);
``mlrepro.open_project(path)`` the project API for notebooks (see ``mlrepro.notebook``). Both
are imported lazily so that ``import mlrepro`` (and ``mlrepro --help``) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlrepro.version import __version__

__all__ = ["Bundle", "BundleMetadata", "__version__", "load_bundle", "open_project"]

if TYPE_CHECKING:
    from mlrepro.delivery.api import Bundle, BundleMetadata, load_bundle
    from mlrepro.notebook import open_project

_LAZY = {"load_bundle", "Bundle", "BundleMetadata"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from mlrepro.delivery import api

        return getattr(api, name)
    if name == "open_project":
        from mlrepro.notebook import open_project

        return open_project
    raise AttributeError(f"module 'mlrepro' has no attribute {name!r}")
