"""Content fingerprints for parameters, tables and fitted models.

A fingerprint is ``"b3:"`` + the blake3 hex digest of a *canonical* encoding of the content,
so it changes when the content changes and only then: not with file bytes, compression,
chunking, dict order, memory layout or pickling round-trips.

pandas, pyarrow and scikit-learn are never imported at module level (the CLI must start
fast); numpy and pyarrow are imported inside the functions that need them.
"""

from typing import TYPE_CHECKING, Any

from mlrepro.fingerprint.canonical import canonical_json, fingerprint_params
from mlrepro.fingerprint.digest import PREFIX, hash_bytes, hash_file

if TYPE_CHECKING:
    from mlrepro.fingerprint.frames import FrameHasher, fingerprint_frame
    from mlrepro.fingerprint.models import EXECUTION_ONLY_PARAMS, fingerprint_model

# frames and models load on first use: planning (status, a no-op run) needs neither
_LAZY = {
    "FrameHasher": "frames",
    "fingerprint_frame": "frames",
    "EXECUTION_ONLY_PARAMS": "models",
    "fingerprint_model": "models",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"mlrepro.fingerprint.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlrepro.fingerprint' has no attribute {name!r}")


# The encoding of every fingerprint (canonical JSON, frames, models). Bump it, and keep the
# old encoding readable, whenever a fingerprint of the same content would change; the golden
# vectors in tests/test_golden_fingerprints.py fail on any such change.
FINGERPRINT_FORMAT = 1
SUPPORTED_FINGERPRINT_FORMATS = frozenset({1})

__all__ = [
    "EXECUTION_ONLY_PARAMS",
    "FINGERPRINT_FORMAT",
    "SUPPORTED_FINGERPRINT_FORMATS",
    "PREFIX",
    "FrameHasher",
    "canonical_json",
    "fingerprint_frame",
    "fingerprint_model",
    "fingerprint_params",
    "hash_bytes",
    "hash_file",
]
