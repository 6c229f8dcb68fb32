"""Helpers for the signing, registry and hot-swap tests.

``models(base)`` trains the diabetes example with three seeds (three different models with
the same input contract) and bundles each, once per test session; ``keys(base)`` makes two
key pairs. ``forge_move`` writes a move into a folder registry by hand, the way someone
with write access to the share (not ``mlrepro publish``) could.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples"
_IGNORE = shutil.ignore_patterns(".mlrepro", "mlrepro.lock", ".mlrepro.lock.pid", "predictions*")
_MODELS: dict[str, dict[str, Path]] = {}


def train(name: str, dest: Path, seed: int | None = None) -> Path:
    from mlrepro.core import manifest
    from mlrepro.pipeline.runner import Runner

    shutil.copytree(EXAMPLES / name, dest, ignore=_IGNORE)
    if seed is not None:
        path = dest / "mlrepro.yaml"
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("seed: 42", f"seed: {seed}", 1), encoding="utf-8")
    Runner(manifest.load(dest)).run()  # every stage (a stage never run fails verify)
    return dest


def models(base: Path) -> dict[str, Path]:
    """{"a", "b", "c": diabetes bundles of three seeds, "cancer": another contract,
    "project_a": the project of "a"} (trained once per session)."""
    key = str(base)
    if key not in _MODELS:
        from mlrepro.core import manifest
        from mlrepro.delivery import bundle

        out: dict[str, Path] = {}
        for label, seed in (("a", 42), ("b", 43), ("c", 44)):
            project = train("diabetes", base / f"diabetes_{label}", seed)
            out[label] = base / f"{label}.mlrepro"
            bundle.build(manifest.load(project), out[label])
            if label == "a":
                out["project_a"] = project
        project = train("breast_cancer", base / "cancer")
        out["cancer"] = base / "cancer.mlrepro"
        bundle.build(manifest.load(project), out["cancer"])
        _MODELS[key] = out
    return _MODELS[key]


def keys(base: Path) -> dict[str, Path]:
    """{"me", "other"}: key-pair base names (NAME.key / NAME.pub exist)."""
    from mlrepro.delivery import signing

    out = {}
    for name in ("me", "other"):
        if not (base / f"{name}.key").exists():
            signing.keygen(base / name)
        out[name] = base / name
    return out


def signed(src: Path, key: Path, dest: Path) -> Path:
    from mlrepro.delivery import signing

    signing.sign_file(src, signing.load_private_key(f"{key}.key"), output=dest)
    return dest


def forge_move(root: Path, alias: str, data: bytes, bundle_fp: str, model_fp: str) -> None:
    """Put ``data`` under ``alias`` in a folder registry without any of publish's checks."""
    from mlrepro.fingerprint import hash_bytes

    obj = hash_bytes(data)
    (root / "objects").mkdir(parents=True, exist_ok=True)
    (root / "objects" / f"{obj.split(':', 1)[1]}.mlrepro").write_bytes(data)
    folder = root / "aliases" / alias
    folder.mkdir(parents=True, exist_ok=True)
    seqs = sorted(int(p.stem) for p in folder.glob("*.json"))
    seq = (seqs[-1] + 1) if seqs else 1
    move = {
        "alias": alias,
        "seq": seq,
        "object": obj,
        "bundle_fingerprint": bundle_fp,
        "model_fingerprint": model_fp,
        "project": "forged",
        "action": "publish",
        "by": "mallory",
        "at": "2026-01-01T00:00:00Z",
        "previous": None,
    }
    (folder / f"{seq:010d}.json").write_text(json.dumps(move), encoding="utf-8")


def tampered_bytes(src: Path) -> bytes:
    """A copy of a bundle with one letter of metadata.json changed (same size, same index)."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(buf, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "metadata.json":
                at = data.index(b'"task": "') + len(b'"task": "')
                data = data[:at] + data[at : at + 1].upper() + data[at + 1 :]
            zout.writestr(info, data)
    return buf.getvalue()


class FailingModel:
    """A 'fitted model' whose predict fails: for the warm-up check (picklable, importable)."""

    def predict(self, X):  # noqa: ANN001, ANN201
        raise RuntimeError("this model cannot predict")


def failing_bundle(src: Path, dest: Path) -> Path:
    """``src`` with its pipeline replaced by a FailingModel (a consistent, valid bundle)."""
    import io

    import joblib

    from mlrepro.delivery import bundle as fmt

    verified = fmt.read_verified(src)
    members = dict(verified.members)
    buf = io.BytesIO()
    joblib.dump(FailingModel(), buf)
    members[fmt.PIPELINE] = buf.getvalue()
    index = verified.index
    fmt.write_archive(dest, index["project"], index["model_fingerprint"], members)
    return dest
