"""Where ``mlrepro env`` finds a recorded environment: a project's lock or a bundle.

Both are untrusted input: the lock is read by ``lockfile.read`` (format checks), the bundle
by ``bundle.read_verified`` (every member's hash checked; nothing is unpickled). The classes
the pipeline is made of come from the recorded ``structure`` of the train stage, so the
ranking needs no manifest and no scikit-learn import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlrepro.errors import ArtifactError, UsageError
from mlrepro.project import lockfile

FEATURE_STEPS = "mlrepro.transformers.FeatureSteps"


@dataclass
class Recorded:
    record: dict[str, Any]
    fingerprint: str | None
    class_paths: list[str]
    source: str  # for messages: "mlrepro.lock" or "bundle model.mlrepro"


def structure_classes(node: Any, out: list[str] | None = None, depth: int = 0) -> list[str]:
    """Every ``class`` named in a recorded model structure (steps, members, estimators)."""
    out = [] if out is None else out
    if depth > 20:
        return out
    if isinstance(node, dict):
        cls = node.get("class")
        if isinstance(cls, str) and cls not in out and len(cls) < 300:
            out.append(cls)
        for value in node.values():
            if isinstance(value, (dict, list)):
                structure_classes(value, out, depth + 1)
    elif isinstance(node, list):
        for item in node[:1000]:
            structure_classes(item, out, depth + 1)
    return out


def class_paths_of(details: dict[str, Any]) -> list[str]:
    found = structure_classes(details.get("structure") or {})
    est = details.get("estimator")
    if isinstance(est, str) and est not in found:
        found.append(est)
    return [FEATURE_STEPS] + [c for c in found if c != FEATURE_STEPS]


def from_lock(path: Path) -> Recorded:
    path = Path(path)
    if path.is_dir():
        path = path / lockfile.LOCK_NAME
    if not path.is_file():
        raise ArtifactError(
            f"{path} does not exist: no recorded environment to compare with",
            hint="run 'mlrepro run' to record one, or pass --lock FILE or --bundle FILE",
        )
    lock = lockfile.read(path.parent)
    stages = lock["stages"]
    if not stages:
        raise ArtifactError(
            f"{path} records no stages, so no environment",
            hint="run 'mlrepro run' to record one",
        )
    name = "train" if "train" in stages else sorted(stages)[-1]
    rec = stages[name]
    record = rec.get("environment") or {}
    details = rec.get("details") if name == "train" else stages.get("train", {}).get("details")
    return Recorded(
        record,
        rec.get("environment_fingerprint"),
        class_paths_of(details or {}),
        f"{path.name} (stage {name})",
    )


def from_bundle(path: Path) -> Recorded:
    from mlrepro.delivery import bundle as fmt

    verified = fmt.read_verified(path, None)
    meta = verified.metadata()
    record = meta.get("environment")
    if not isinstance(record, dict):
        raise fmt.malformed(verified.path, fmt.METADATA, "has no environment record")
    fp = meta.get("environment_fingerprint")
    return Recorded(
        record,
        fp if isinstance(fp, str) else lockfile.environment_fingerprint(record),
        class_paths_of(meta),
        f"bundle {verified.path.name}",
    )


def load(lock: Path | None, bundle: Path | None, project: Path | None) -> Recorded:
    """The record named by ``--lock`` or ``--bundle`` (default: the project's lock)."""
    if lock is not None and bundle is not None:
        raise UsageError("use just one of --lock or --bundle", hint="pass one record to compare")
    if bundle is not None:
        return from_bundle(bundle)
    if lock is not None:
        return from_lock(lock)
    root = Path(project) if project is not None else Path.cwd()
    if root.is_file():
        root = root.parent
    return from_lock(root / lockfile.LOCK_NAME)
