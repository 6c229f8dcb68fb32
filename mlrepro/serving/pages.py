"""Pages ``mlrepro serve`` answers besides predictions: the bundle's report."""

from __future__ import annotations

from typing import Any


def bundle_report(bundle: Any) -> bytes:
    """The HTML report of a loaded bundle, from its verified file (pinned to what was loaded).

    Raises ``ArtifactError`` when the file on disk is no longer the bundle that was loaded.
    """
    from mlrepro.delivery.bundle import read_verified
    from mlrepro.report import render
    from mlrepro.report.collect import from_bundle

    verified = read_verified(bundle.path, bundle.fingerprint)
    return render(from_bundle(verified), "html").encode("utf-8")
