"""File hashes remembered by stat signature, so ``status`` and a no-op ``run`` need not
re-read every artifact.

Planning asks whether an output is still the file the lock recorded. Hashing every byte of
every artifact on each ``status`` costs seconds on a large project; this cache
(``.mlrepro/statcache.json``, never the lock) maps a project-relative path to the signature
``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)`` it had when it was hashed, and that
hash. A file whose signature is unchanged is taken to hold the same bytes.

Why this is sound where "size + mtime" is not: ``st_ctime`` is set by the kernel on every
write, truncate, rename-over, chmod and ``utime`` call, and no unprivileged call sets it back,
so rewriting a file with the same size and then restoring its mtime still changes the
signature. Replacing the file changes the inode. What remains is the "racy" case: a write in
the same timestamp tick as the stat that was cached (coarse-grained file systems). So an entry
is recorded only when both mtime and ctime are at least ``SETTLE_NS`` older than the clock at
the time of the stat; a freshly written artifact is simply hashed again next time. Moving the
system clock backwards or editing the raw block device are out of scope.

The cache only decides staleness. Every read of an artifact (``Store.verified_path``) and
``verify`` still hash the bytes, so a forged cache entry cannot get a tampered file loaded; at
worst it makes ``status`` call a modified file up to date, which anyone able to write
``.mlrepro/`` could achieve by editing the lock as well. A cache file that is missing,
malformed, too large or not writable (read-only project) is ignored: files are hashed.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from mlrepro.fingerprint.digest import hash_file
from mlrepro.guards import safejson

CACHE_NAME = "statcache.json"
SETTLE_NS = 2_000_000_000  # covers file systems with 1-2 s timestamp granularity
MAX_BYTES = 4 << 20  # a larger cache file is ignored (and rewritten)
FORMAT = 1

Signature = tuple[int, int, int, int, int]


def signature(st: os.stat_result) -> Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class StatCache:
    """Hashes of files under ``root``, reused while their stat signature is unchanged."""

    def __init__(self, root: Path, store_dir: str) -> None:
        self.root = root
        self.path = root / store_dir / CACHE_NAME
        self._entries: dict[str, tuple[Signature, str]] | None = None
        self._dirty = False

    def _load(self) -> dict[str, tuple[Signature, str]]:
        if self._entries is not None:
            return self._entries
        entries: dict[str, tuple[Signature, str]] = {}
        with contextlib.suppress(OSError, ValueError, TypeError):
            if self.path.is_file() and self.path.stat().st_size <= MAX_BYTES:
                data = safejson.loads(self.path.read_bytes(), limit=4)
                if isinstance(data, dict) and data.get("format") == FORMAT:
                    for key, value in dict(data.get("files", {})).items():
                        sig, digest = value[:5], value[5]
                        if (
                            isinstance(key, str)
                            and isinstance(digest, str)
                            and len(value) == 6
                            and all(type(v) is int for v in sig)
                        ):
                            entries[key] = (tuple(sig), digest)
        self._entries = entries
        return entries

    def _key(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def hash_file(self, path: Path) -> str:
        """``hash_file(path)``, without reading it when its signature matches the cache."""
        entries = self._load()
        key = self._key(path)
        st = os.stat(path)
        sig = signature(st)
        known = entries.get(key)
        if known is not None and known[0] == sig:
            return known[1]
        now = time.time_ns()
        digest = hash_file(path)
        if now - max(st.st_mtime_ns, st.st_ctime_ns) >= SETTLE_NS:
            entries[key] = (sig, digest)
            self._dirty = True
        elif known is not None:
            del entries[key]
            self._dirty = True
        return digest

    def save(self) -> None:
        """Write the cache if it changed (best effort: a failure only costs re-hashing)."""
        if not self._dirty or self._entries is None:
            return
        self._dirty = False
        files = {
            k: [*sig, digest]
            for k, (sig, digest) in self._entries.items()
            if os.path.lexists(self.root / k)  # forget deleted artifacts
        }
        data = json.dumps({"format": FORMAT, "files": files}, sort_keys=True).encode()
        if len(data) > MAX_BYTES or not self.path.parent.is_dir():
            return
        from mlrepro.core import atomic
        from mlrepro.errors import MlreproError

        # a fresh temp file (O_EXCL: never a link a project planted), then an atomic rename
        with contextlib.suppress(OSError, MlreproError):
            atomic.write_bytes(self.path, data)
