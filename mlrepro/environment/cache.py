"""The slow half of the environment record, remembered while the installation is unchanged.

``record.capture`` reads the metadata of every installed distribution and imports numpy,
scipy and scikit-learn's OpenMP helpers so that threadpoolctl sees their libraries: 1-3 s,
more than an ``extract`` of a mid-sized table. That half of the record (``distributions``,
``packages``, ``modules``, ``threadpools``) depends only on what is installed where Python
looks, on the interpreter, on the CPUs the process may use and on the variables that set
thread counts. ``capture_cached`` keeps it in ``.mlrepro/envcache.json`` under a key made of:

* the interpreter (``sys.executable``, ``sys.version``) and ``sys.path`` in order;
* for every directory on ``sys.path``: the name and ``(st_dev, st_ino, st_mtime_ns,
  st_ctime_ns)`` of each metadata entry in it (``*.dist-info``, ``*.egg-info``, ``*.pth``,
  ``*.egg-link``, ``__editable__*``). Installing, removing or upgrading a distribution adds,
  removes or renames such entries; pip writes ``RECORD`` and ``METADATA`` as new files,
  which changes the mtime and ctime of their dist-info directory. The directories' own
  timestamps are left out: the project folder itself is on ``sys.path`` under
  ``python -m`` and changes at every lock write;
* the CPU count and affinity, the numeric variables (``OMP_NUM_THREADS``, ...).

Everything else in the record (Python build, OS, CPU model and flags, variables) is read
fresh every time. An entry is stored only when every stat in its key is at least
``SETTLE_NS`` old (an installation still being written is not cached). The cache file is
untrusted like the rest of a project folder: it is parsed with depth and size limits, a
malformed one is ignored, and a key naming another machine's inodes and nanosecond
timestamps does not match. Writing it is best effort (a read-only project just pays the
full capture). ``mlrepro env``, ``verify`` and bundle checks always capture afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlrepro.guards import safejson

CACHE_NAME = "envcache.json"
FORMAT = 1
SETTLE_NS = 2_000_000_000
MAX_BYTES = 8 << 20
CACHED = ("distributions", "packages", "modules", "threadpools")
_META_SUFFIXES = (".dist-info", ".egg-info", ".pth", ".egg-link")


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def installation_key(numeric_variables: dict[str, str]) -> tuple[str, int]:
    """(digest of what the cached half depends on, newest timestamp among its stats)."""
    newest = 0
    dirs: list[Any] = []
    for entry in sys.path:
        where = os.path.abspath(entry or os.curdir)
        metas: list[Any] = []
        with contextlib.suppress(OSError):
            if os.path.isdir(where):
                with os.scandir(where) as it:
                    for item in it:
                        if item.name.endswith(_META_SUFFIXES) or item.name.startswith(
                            "__editable__"
                        ):
                            st = _stat(item.path)
                            if st is not None:
                                newest = max(newest, st[2], st[3])
                            metas.append([item.name, st])
        metas.sort(key=lambda m: m[0])
        dirs.append([entry, os.path.isdir(where), metas])
    affinity: list[int] = []
    with contextlib.suppress(AttributeError, OSError):
        affinity = sorted(os.sched_getaffinity(0))
    material = {
        "format": FORMAT,
        "executable": sys.executable,
        "version": sys.version,
        "path": dirs,
        "cpus": os.cpu_count(),
        "affinity": affinity,
        "variables": numeric_variables,
    }
    blob = json.dumps(material, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest(), newest


def load(path: Path, key: str) -> dict[str, Any] | None:
    """The cached half for ``key``, or None (missing, malformed, other key)."""
    with contextlib.suppress(OSError, ValueError, TypeError):
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        data = safejson.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
            return None
        part = data.get("record")
        if (
            isinstance(part, dict)
            and set(part) == set(CACHED)
            and isinstance(part["distributions"], dict)
            and isinstance(part["packages"], dict)
            and isinstance(part["modules"], dict)
            and isinstance(part["threadpools"], list)
        ):
            return part
    return None


def store(path: Path, key: str, newest_ns: int, record: dict[str, Any]) -> None:
    """Remember the cached half of ``record`` (best effort; skipped while settling)."""
    if time.time_ns() - newest_ns < SETTLE_NS or not path.parent.is_dir():
        return
    data = json.dumps(
        {"format": FORMAT, "key": key, "record": {k: record[k] for k in CACHED}},
        sort_keys=True,
        default=str,
    ).encode()
    if len(data) > MAX_BYTES:
        return
    # a fresh temp file (mkstemp: O_EXCL, never a link a project planted), then a rename
    try:
        fd, name = tempfile.mkstemp(prefix=f"{CACHE_NAME}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(name, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(name)
