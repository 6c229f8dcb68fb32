"""Content-addressed artifact store under ``<project>/.mlrepro/objects``.

An artifact is named by its content fingerprint, so a new run never overwrites a file the
current lock names: a run killed half-way leaves the previous lock and all its artifacts
intact. Every artifact also records ``file_hash`` (blake3 of its bytes), checked before
anything is deserialized, so a tampered pickle is refused before it can run code.

A placed file is never overwritten: when the content address is taken by different bytes
(another library version wrote the same content, or the file was tampered with), the new
file gets a name of its own, so a lock on disk always keeps the bytes it recorded.
"""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlrepro.core import atomic
from mlrepro.errors import ArtifactError
from mlrepro.fingerprint import hash_file
from mlrepro.project import formats as safe_model
from mlrepro.project.paths import check_store
from mlrepro.project.statcache import StatCache

STORE_DIR = ".mlrepro"


class UntrustedPickle(ArtifactError):
    """A pickled model of a project being verified: loading it would run its code."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"artifact {path} is a pickle made by the project under verification; it was "
            "not loaded (unpickling runs code)",
            hint="pass --trust-artifacts if you trust whoever made this project, or have it "
            "saved with model.format: skops",
        )


def is_pickle(record: dict[str, Any]) -> bool:
    """Whether loading the artifact of ``record`` would unpickle (a joblib model)."""
    return str(record.get("path", "")).endswith(".joblib") and record.get("format") != "skops"


OBJECTS = "objects"


def expect_model(obj: Any, record: dict[str, Any], needs: tuple[str, ...] = ()) -> Any:
    """``obj`` if it is a fitted scikit-learn estimator with ``needs``, else ArtifactError.

    A hash-valid artifact can still hold the wrong object (a lock edited to name another
    file, a dict pickled in place of a model): that is a tampered artifact, exit 4, not a
    crash later in the pipeline.
    """
    from mlrepro.core.resolve import is_estimator_class

    missing = [n for n in needs if not callable(getattr(obj, n, None))]
    if not is_estimator_class(type(obj)) or missing:
        what = type(obj).__name__
        lacks = f" without {', '.join(n + '()' for n in missing)}" if missing else ""
        raise ArtifactError(
            f"artifact {record.get('path')} holds a {what}{lacks}, not the fitted estimator "
            "the lock says it is",
            hint="restore the project's .mlrepro/ and mlrepro.lock, or run "
            "'mlrepro run --force' to rebuild them",
        )
    return obj


@dataclass
class Store:
    """Artifacts of one project (or of a scratch folder used by ``verify``)."""

    root: Path  # paths in records are relative to this folder
    # objects written by this process, by path: a later stage reuses them instead of
    # reading back and unpickling what it has just written
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)
    model_format: str = "joblib"  # "skops": models are saved and loaded with skops only
    plugins: tuple[str, ...] = ()  # manifest plugin modules, trusted by skops loading
    created: list[Path] = field(default_factory=list, repr=False)  # placed by this process
    # False: a pickled model is never loaded (verify of a project someone else made)
    allow_pickles: bool = True
    hashes: StatCache = field(init=False, repr=False)  # planning only: see statcache.py

    def __post_init__(self) -> None:
        self.hashes = StatCache(self.root, STORE_DIR)

    @property
    def objects(self) -> Path:
        return self.root / STORE_DIR / OBJECTS

    def _place(self, tmp: Path, fingerprint: str, ext: str) -> dict[str, Any]:
        """Move a finished temp file to its content address and describe it."""
        digest = fingerprint.split(":", 1)[-1]
        rel = Path(STORE_DIR) / OBJECTS / digest[:2] / f"{digest[2:]}.{ext}"
        file_hash = hash_file(tmp)
        if (self.root / rel).exists() and hash_file(self.root / rel) != file_hash:
            rel = rel.with_name(f"{digest[2:]}-{file_hash.split(':', 1)[-1][:16]}.{ext}")
        dest = self.root / rel
        if not (dest.exists() and hash_file(dest) == file_hash):
            self.created.append(dest)  # before the rename: an interrupt may land right after
            atomic.commit(tmp, dest)
        return {"path": rel.as_posix(), "fingerprint": fingerprint, "file_hash": file_hash}

    def discard_created(self, keep: set[str] | None) -> None:
        """Remove files this process placed that ``keep`` (lock paths) does not name.

        Called when a stage fails or is interrupted, so it leaves no orphan artifacts.
        ``keep=None`` (the lock is unreadable) removes nothing.
        """
        if keep is None:
            return
        for path in self.created:
            if path.relative_to(self.root).as_posix() not in keep:
                path.unlink(missing_ok=True)
        self.created.clear()

    def _staging(self) -> Path:
        return self.root / STORE_DIR / "staging"

    def temp(self, suffix: str) -> AbstractContextManager[Path]:
        """A temp file in the store's staging folder, removed unless placed."""
        return atomic.temp_path(self._staging(), suffix)

    # ---------------------------------------------------------------- frames (parquet)
    def write_frame(self, df: Any) -> dict[str, Any]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from mlrepro.fingerprint import fingerprint_frame

        table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
        fp = fingerprint_frame(table)
        with self.temp(".parquet") as tmp:
            pq.write_table(table, tmp)
            record = self._place(tmp, fp, "parquet")
        record.update(rows=table.num_rows, columns=table.num_columns)
        return record

    def write_parquet_file(
        self, tmp: Path, fingerprint: str, rows: int, cols: int
    ) -> dict[str, Any]:
        """Adopt a parquet file written elsewhere (streamed extract) into the store."""
        record = self._place(tmp, fingerprint, "parquet")
        record.update(rows=rows, columns=cols)
        return record

    def read_frame(self, record: dict[str, Any]) -> Any:
        import pyarrow.parquet as pq

        path = self.verified_path(record)
        try:
            return pq.read_table(path).to_pandas()
        except Exception as exc:  # truncated / corrupted parquet
            raise ArtifactError(
                f"artifact {record['path']} cannot be read as parquet ({type(exc).__name__})",
                hint="delete .mlrepro/ and run 'mlrepro run --force' to rebuild it",
            ) from None

    # ---------------------------------------------------------------- models (joblib)
    def write_model(self, obj: Any) -> dict[str, Any]:
        import joblib

        from mlrepro.fingerprint import fingerprint_model

        fp = fingerprint_model(obj)
        if self.model_format == safe_model.EXT:
            with self.temp(f".{safe_model.EXT}") as tmp:
                types = safe_model.dump(obj, tmp, self.plugins)
                record = self._place(tmp, fp, safe_model.EXT)
            return {**record, "format": safe_model.EXT, "trusted_types": types}
        with self.temp(".joblib") as tmp:
            joblib.dump(obj, tmp)
            record = self._place(tmp, fp, "joblib")
        self._memo[record["path"]] = (record["file_hash"], obj)
        return record

    def read_model(self, record: dict[str, Any], needs: tuple[str, ...] = ()) -> Any:
        """The model an artifact holds: a scikit-learn estimator with the methods ``needs``."""
        import joblib

        cached = self._memo.get(record["path"])
        if cached is not None and cached[0] == record["file_hash"] and self.is_intact(record):
            return cached[1]
        path = self.verified_path(record)  # integrity first: unpickling runs code
        if record.get("format") == safe_model.EXT:
            return expect_model(safe_model.load(path, record, self.plugins), record, needs)
        if not self.allow_pickles:
            raise UntrustedPickle(record["path"])
        if self.model_format == safe_model.EXT:
            raise ArtifactError(
                f"artifact {record['path']} is a pickle, but the manifest sets "
                "model.format: skops, so pickles are never loaded",
                hint="run 'mlrepro run --force' to save every model with skops",
            )
        try:
            obj = joblib.load(path)
        except Exception as exc:  # hash-valid but not a loadable pickle
            raise ArtifactError(
                f"artifact {record['path']} cannot be loaded as a model ({type(exc).__name__})",
                hint="delete it and run 'mlrepro run --force' to rebuild it",
            ) from None
        return expect_model(obj, record, needs)

    # ---------------------------------------------------------------- text (schema)
    def write_text(self, text: str, ext: str) -> dict[str, Any]:
        return self.write_bytes(text.encode("utf-8"), ext)

    def write_bytes(self, data: bytes, ext: str) -> dict[str, Any]:
        """An opaque artifact (schema text, a compiled program): fingerprint = its hash."""
        from mlrepro.fingerprint import hash_bytes

        fp = hash_bytes(data)
        with self.temp(f".{ext}") as tmp:
            tmp.write_bytes(data)
            return self._place(tmp, fp, ext)

    def read_text(self, record: dict[str, Any]) -> str:
        from mlrepro.guards import safejson

        data = self.verified_path(record).read_bytes()
        if safejson.depth(data) > safejson.MAX_DEPTH:  # a parser would recurse that deep
            raise ArtifactError(
                f"artifact {record['path']} is nested more than {safejson.MAX_DEPTH} levels "
                "deep: refusing to parse it",
                hint="delete it and run 'mlrepro run --force' to rebuild it",
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ArtifactError(
                f"artifact {record['path']} is not UTF-8 text",
                hint="delete it and run 'mlrepro run --force' to rebuild it",
            ) from None

    # ---------------------------------------------------------------- integrity
    def verified_path(self, record: dict[str, Any]) -> Path:
        """Path of an artifact whose bytes match the record, or an ArtifactError."""
        path: Path = self.root / record["path"]
        if not path.is_file():
            raise ArtifactError(
                f"artifact {record['path']} is missing",
                hint="run 'mlrepro run' to rebuild it",
            )
        actual = hash_file(path)
        if actual != record["file_hash"]:
            raise ArtifactError(
                f"artifact {record['path']} does not match its recorded hash "
                f"(expected {record['file_hash'][:15]}..., found {actual[:15]}...): "
                "it was modified or corrupted, refusing to load it",
                hint="restore the file, or delete it and run 'mlrepro run --force'",
            )
        return path

    def is_intact(self, record: dict[str, Any]) -> bool:
        if "path" not in record:  # e.g. predictions written to a database table
            return True
        path = self.root / record["path"]
        return path.is_file() and hash_file(path) == str(record["file_hash"])

    def is_unchanged(self, record: dict[str, Any]) -> bool:
        """``is_intact`` for planning: a file whose stat signature is the one it had when it
        was last hashed is not read again (``statcache``). Loading still hashes the bytes."""
        if "path" not in record:
            return True
        path = self.root / record["path"]
        return path.is_file() and self.hashes.hash_file(path) == str(record["file_hash"])

    def prune(self, keep: set[str]) -> int:
        """Delete objects not named in ``keep`` (relative posix paths); returns how many."""
        check_store(self.root)
        removed = 0
        if not self.objects.exists():
            return 0
        fence = self.objects.resolve()
        for p in self.objects.rglob("*"):
            if not p.parent.resolve().is_relative_to(fence):  # a symlinked folder: leave it
                continue
            if p.relative_to(self.root).as_posix() in keep:
                continue
            if p.is_symlink() or p.is_file():  # a link is removed itself, never its target
                p.unlink()
                removed += 1
        for folder in self.objects.iterdir():
            if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                folder.rmdir()
        shutil.rmtree(self.root / STORE_DIR / "staging", ignore_errors=True)
        return removed
