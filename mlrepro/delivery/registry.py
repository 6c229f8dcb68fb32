"""A model registry: bundles stored content-addressed, aliases moved atomically with history.

``open_registry(URL)`` gives one of two backends with the same behaviour:

* a **folder** (local disk or a network share): ``objects/<blake3>.mlrepro`` holds each bundle
  under the hash of its bytes; ``aliases/<alias>/<seq>.json`` is one file per alias move.
  A move is written to a temp file and published with ``os.link`` (atomic, and fails if
  the name exists, also over NFS), so two publishers racing for the same sequence number
  never overwrite each other: the loser retries with the next number. The alias is the
  move with the highest number, so history is the folder listing. Objects are complete
  (written, fsynced, renamed) before any move names them.
* a **SQLAlchemy database URL** (PostgreSQL, SQLite, ...): bundles are blobs in
  ``mlrepro_registry_objects``; each move is a row of ``mlrepro_registry_moves`` inserted in
  one transaction whose primary key (alias, seq) makes a racing insert fail and retry.
  PostgreSQL also sends ``NOTIFY mlrepro_registry`` on every move, so followers wake at once.

Everything read back from a registry is untrusted: every record is shape-checked, every
object is checked against its hash, and bundles are then verified like any other bundle.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlrepro.errors import ArtifactError, MlreproError, SourceError, UsageError
from mlrepro.fingerprint import hash_bytes

ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
OBJECT = re.compile(r"^b3:[0-9a-f]{64}$")
MAX_BUNDLE_BYTES = 4 << 30
NOTIFY_CHANNEL = "mlrepro_registry"
_RETRIES = 200


@dataclass(frozen=True)
class Move:
    """One alias move: from now on ``alias`` names the bundle stored as ``object``."""

    alias: str
    seq: int
    object: str  # blake3 of the bundle file's bytes (signatures included)
    bundle_fingerprint: str  # blake3 of its index
    model_fingerprint: str
    project: str
    action: str  # publish | rollback
    by: str
    at: str
    previous: str | None = None  # the object the alias named before

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, data: Any, where: str) -> Move:
        """A move read from a registry (untrusted): every field type-checked."""
        try:
            if not isinstance(data, dict):
                raise TypeError
            move = cls(
                alias=str(data["alias"]),
                seq=int(data["seq"]),
                object=str(data["object"]),
                bundle_fingerprint=str(data["bundle_fingerprint"]),
                model_fingerprint=str(data["model_fingerprint"]),
                project=str(data.get("project") or ""),
                action=str(data.get("action") or "publish"),
                by=str(data.get("by") or ""),
                at=str(data.get("at") or ""),
                previous=(str(data["previous"]) if data.get("previous") else None),
            )
        except (KeyError, TypeError, ValueError):
            raise ArtifactError(
                f"registry record {where} is malformed",
                hint="the registry was modified by hand or damaged; repair or remove the record",
            ) from None
        if not OBJECT.match(move.object) or not ALIAS.match(move.alias):
            raise ArtifactError(
                f"registry record {where} names an invalid object or alias",
                hint="the registry was modified by hand or damaged; repair or remove the record",
            )
        return move


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS.match(alias):
        raise UsageError(
            f"alias {alias!r} is not valid",
            hint="use letters, digits, '.', '_' or '-' (at most 64), e.g. --alias production",
        )
    return alias


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _hex(obj: str) -> str:
    return obj.split(":", 1)[1]


def _who(by: str | None) -> str:
    if by:
        return by[:200]
    from mlrepro.delivery.signing import who

    return who()


@dataclass(frozen=True)
class Staged:
    """A bundle to publish: its bytes, read once, and what verifying them found."""

    data: bytes
    object: str
    fingerprint: str
    model_fingerprint: str
    project: str


def stage(
    path: str | Path,
    *,
    trusted_keys: Sequence[Any] = (),
    require_attestation: bool = False,
) -> Staged:
    """Read a bundle once and verify those bytes (integrity, then signature/attestation)."""
    from mlrepro.delivery import bundle as fmt
    from mlrepro.delivery import signing

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(
            f"bundle {path} does not exist", hint="build one with 'mlrepro bundle -o FILE'"
        )
    if require_attestation and not trusted_keys:
        raise UsageError(
            "--require-attestation needs --trust PUB: an attestation is only worth "
            "something when its signer is trusted",
            hint="add --trust with the attester's public key (NAME.pub)",
        )
    data = path.read_bytes()
    with tempfile.TemporaryDirectory(prefix="mlrepro-publish-") as tmp:
        copy = Path(tmp) / path.name
        copy.write_bytes(data)
        verified = fmt.read_verified(copy)
        what = f"bundle {path.name}"
        if trusted_keys:
            signing.check_bundle(verified, trusted_keys)
        if require_attestation:
            found = signing.bundle_envelopes(verified)["attestations"]
            model_fp = str(verified.index.get("model_fingerprint"))
            signing.check_attestation(found, model_fp, trusted_keys, what)
    return Staged(
        data=data,
        object=hash_bytes(data),
        fingerprint=verified.fingerprint,
        model_fingerprint=str(verified.index.get("model_fingerprint")),
        project=str(verified.index.get("project") or ""),
    )


class Registry:
    """What both backends do; see the module docstring."""

    url: str
    watch = "poll"

    # ---------------------------------------------------------------- backend primitives
    def _put_object(self, staged: Staged) -> None:
        raise NotImplementedError

    def _read_object(self, obj: str) -> bytes | None:
        raise NotImplementedError

    def _has_object(self, obj: str) -> bool:
        raise NotImplementedError

    def _append(self, alias: str, make: Any) -> Move:
        """Insert the move ``make(seq, previous)`` with the next sequence number, atomically."""
        raise NotImplementedError

    def history(self, alias: str) -> list[Move]:
        raise NotImplementedError

    def aliases(self) -> list[str]:
        raise NotImplementedError

    def current(self, alias: str) -> Move | None:
        moves = self.history(alias)
        return moves[-1] if moves else None

    def wait(self, timeout: float, stop: threading.Event) -> None:
        """Sleep up to ``timeout`` seconds (less when a move is announced or ``stop`` set)."""
        stop.wait(timeout)

    def close(self) -> None:
        pass

    # ---------------------------------------------------------------- operations
    def publish(
        self,
        path: str | Path,
        alias: str,
        *,
        trusted_keys: Sequence[Any] = (),
        require_attestation: bool = False,
        by: str | None = None,
    ) -> Move:
        """Store the bundle (if new), then move ``alias`` to it; returns the move."""
        check_alias(alias)
        staged = stage(path, trusted_keys=trusted_keys, require_attestation=require_attestation)
        if len(staged.data) > MAX_BUNDLE_BYTES:
            raise UsageError(f"bundle {Path(path).name} is too large for a registry", hint=None)
        self._put_object(staged)
        who = _who(by)

        def make(seq: int, previous: str | None) -> Move:
            return Move(
                alias=alias,
                seq=seq,
                object=staged.object,
                bundle_fingerprint=staged.fingerprint,
                model_fingerprint=staged.model_fingerprint,
                project=staged.project,
                action="publish",
                by=who,
                at=_now(),
                previous=previous,
            )

        return self._append(alias, make)

    def rollback(self, alias: str, to: str | None = None, *, by: str | None = None) -> Move:
        """Move ``alias`` back: to what it named before (default), to move number ``to``, or
        to the bundle with fingerprint ``to`` (bundle, model or object fingerprint)."""
        check_alias(alias)
        moves = self.history(alias)
        if not moves:
            raise UsageError(
                f"alias {alias!r} does not exist in {self.url}",
                hint="list the aliases with 'mlrepro registry list --registry URL'",
            )
        target = self._target(moves, to, alias)
        if not self._has_object(target.object):
            raise ArtifactError(
                f"the bundle of move {target.seq} ({target.object[:20]}...) is missing from the "
                "registry",
                hint="publish that bundle again, or roll back to another move",
            )
        who = _who(by)

        def make(seq: int, previous: str | None) -> Move:
            return Move(
                alias=alias,
                seq=seq,
                object=target.object,
                bundle_fingerprint=target.bundle_fingerprint,
                model_fingerprint=target.model_fingerprint,
                project=target.project,
                action="rollback",
                by=who,
                at=_now(),
                previous=previous,
            )

        return self._append(alias, make)

    @staticmethod
    def _target(moves: list[Move], to: str | None, alias: str) -> Move:
        current = moves[-1]
        if to is None:
            earlier = [m for m in moves if m.object == current.previous]
            if current.previous is None or not earlier:
                raise UsageError(
                    f"alias {alias!r} has nothing to roll back to "
                    f"(move {current.seq} is its first)",
                    hint="publish another bundle, or pass --to",
                )
            return earlier[-1]
        if to.isdigit():
            found = [m for m in moves if m.seq == int(to)]
        else:
            found = [
                m
                for m in moves
                if to in (m.object, m.bundle_fingerprint, m.model_fingerprint)
                or (len(to) >= 10 and m.bundle_fingerprint.startswith(to))
            ]
        if not found:
            raise UsageError(
                f"alias {alias!r} never named {to!r}",
                hint="pick a move number or fingerprint from 'mlrepro registry history'",
            )
        return found[-1]

    def fetch(self, move: Move, folder: Path) -> Path:
        """The move's bundle as a local file in ``folder``, checked against its hash."""
        data = self._read_object(move.object)
        if data is None:
            raise ArtifactError(
                f"the registry has no bundle {move.object[:20]}... (named by alias "
                f"{move.alias!r}, move {move.seq})",
                hint="publish the bundle again, or roll the alias back",
            )
        actual = hash_bytes(data)
        if actual != move.object:
            raise ArtifactError(
                f"registry bundle {move.object[:20]}... does not match its hash "
                f"(found {actual[:20]}...): it was modified or corrupted",
                hint="publish the bundle again, or roll the alias back",
            )
        target = Path(folder) / f"{_hex(move.object)}.mlrepro"
        if not target.exists():
            from mlrepro.core import atomic

            atomic.write_bytes(target, data)
        return target

    def listing(self) -> list[dict[str, Any]]:
        out = []
        for alias in self.aliases():
            moves = self.history(alias)
            if moves:
                out.append({**moves[-1].to_dict(), "moves": len(moves)})
        return out


# ------------------------------------------------------------------------------ folder


class FolderRegistry(Registry):
    def __init__(self, root: Path, *, create: bool = False) -> None:
        self.root = Path(root)
        self.url = str(self.root)
        if not self.root.is_dir():
            if not create:
                raise UsageError(
                    f"registry folder {self.root} does not exist",
                    hint="check --registry; 'mlrepro publish' creates it",
                )
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(
                    f"cannot create registry folder {self.root} ({exc.strerror})",
                    hint="check --registry and the permissions",
                ) from None
        self.objects = self.root / "objects"
        self.moves = self.root / "aliases"

    def _object_path(self, obj: str) -> Path:
        return self.objects / f"{_hex(obj)}.mlrepro"

    def _put_object(self, staged: Staged) -> None:
        from mlrepro.core import atomic
        from mlrepro.fingerprint import hash_file

        path = self._object_path(staged.object)
        if path.is_file() and hash_file(path) == staged.object:
            return  # content-addressed: already there
        self.objects.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(path, staged.data)

    def _has_object(self, obj: str) -> bool:
        return self._object_path(obj).is_file()

    def _read_object(self, obj: str) -> bytes | None:
        try:
            return self._object_path(obj).read_bytes()
        except FileNotFoundError:
            return None

    def _seqs(self, alias: str) -> list[int]:
        folder = self.moves / alias
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        return sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())

    def history(self, alias: str) -> list[Move]:
        check_alias(alias)
        moves = (self._read_move(alias, seq) for seq in self._seqs(alias))
        return [m for m in moves if m is not None]

    def aliases(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.moves) if ALIAS.match(n))
        except FileNotFoundError:
            return []

    def _read_move(self, alias: str, seq: int) -> Move | None:
        path = self.moves / alias / f"{seq:010d}.json"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ArtifactError(
                f"registry record {path} is not valid JSON",
                hint="the registry was modified by hand or damaged; remove the record",
            ) from None
        move = Move.parse(data, str(path))
        if move.seq != seq or move.alias != alias:
            raise ArtifactError(
                f"registry record {path} claims to be move {move.seq} of {move.alias!r}",
                hint="the registry was modified by hand; remove the record",
            )
        return move

    def current(self, alias: str) -> Move | None:
        """The newest move (reads one record, however long the history)."""
        check_alias(alias)
        for seq in reversed(self._seqs(alias)):
            move = self._read_move(alias, seq)
            if move is not None:
                return move
        return None

    def _append(self, alias: str, make: Any) -> Move:
        folder = self.moves / alias
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(_RETRIES):
            last = self.current(alias)
            seq = last.seq + 1 if last else 1
            move = make(seq, last.object if last else None)
            body = (json.dumps(move.to_dict(), indent=2, sort_keys=True) + "\n").encode()
            target = folder / f"{seq:010d}.json"
            tmp = folder / f".move-{os.getpid()}-{threading.get_ident()}-{seq}.tmp"
            with open(tmp, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, target)  # atomic; fails if another publisher took this number
            except FileExistsError:
                time.sleep(random.uniform(0.001, 0.02))
                continue
            finally:
                tmp.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            return move
        raise MlreproError(
            f"could not move alias {alias!r}: too many concurrent publishers",
            hint="try again",
        )


# ------------------------------------------------------------------------------ SQL


class SqlRegistry(Registry):
    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError:
            raise UsageError(
                f"--registry {url!r} is neither a folder nor a database URL",
                hint="e.g. --registry ./registry or postgresql+psycopg://user@host/db",
            ) from None
        self.url = parsed.render_as_string(hide_password=True)
        self.dialect = parsed.get_backend_name()
        args: dict[str, Any] = {}
        if self.dialect == "sqlite":
            args["connect_args"] = {"timeout": 30}
        elif self.dialect == "postgresql":
            args["connect_args"] = {"connect_timeout": 10}
        try:
            self.engine = sa.create_engine(parsed, pool_pre_ping=True, **args)
        except Exception as exc:  # noqa: BLE001 - a missing driver, a bad option
            raise UsageError(
                f"cannot use registry database {self.url} ({type(exc).__name__}: {exc})",
                hint="check --registry (and that its database driver is installed)",
            ) from None
        md = sa.MetaData()
        self.t_objects = sa.Table(
            "mlrepro_registry_objects",
            md,
            sa.Column("object", sa.String(80), primary_key=True),
            sa.Column("bundle_fingerprint", sa.String(80), nullable=False),
            sa.Column("model_fingerprint", sa.String(80), nullable=False),
            sa.Column("project", sa.String(200), nullable=False),
            sa.Column("size", sa.BigInteger, nullable=False),
            sa.Column("data", sa.LargeBinary, nullable=False),
            sa.Column("created_at", sa.String(40), nullable=False),
        )
        self.t_moves = sa.Table(
            "mlrepro_registry_moves",
            md,
            sa.Column("alias", sa.String(64), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("object", sa.String(80), nullable=False),
            sa.Column("bundle_fingerprint", sa.String(80), nullable=False),
            sa.Column("model_fingerprint", sa.String(80), nullable=False),
            sa.Column("project", sa.String(200), nullable=False),
            sa.Column("action", sa.String(16), nullable=False),
            sa.Column("by", sa.String(200), nullable=False),
            sa.Column("at", sa.String(40), nullable=False),
            sa.Column("previous", sa.String(80), nullable=True),
        )
        self.metadata = md
        self._ready = False
        self._listener: Any = None
        self.watch = "listen" if self.dialect == "postgresql" else "poll"

    def _db(self, action: str, exc: Exception) -> SourceError:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return SourceError(
            f"registry database {self.url}: cannot {action} ({first})",
            hint="check --registry and that the database is up",
        )

    def _setup(self) -> None:
        import sqlalchemy as sa

        if self._ready:
            return
        for attempt in range(5):
            try:
                self.metadata.create_all(self.engine, checkfirst=True)
                break
            except sa.exc.DBAPIError as exc:
                # locked (SQLite), or a concurrent creator won the race ("already exists",
                # a duplicate type on PostgreSQL): look again; checkfirst then finds them
                if attempt < 4:
                    time.sleep(0.1 * (attempt + 1))
                    continue
                raise self._db("create its tables", exc) from None
            except sa.exc.SQLAlchemyError as exc:
                if attempt == 4:
                    raise self._db("create its tables", exc) from None
                time.sleep(0.05 * (attempt + 1))
        self._ready = True

    def _tables_exist(self) -> bool:
        import sqlalchemy as sa

        try:
            return sa.inspect(self.engine).has_table("mlrepro_registry_moves")
        except sa.exc.DBAPIError as exc:
            raise self._db("read it", exc) from None

    def _put_object(self, staged: Staged) -> None:
        import sqlalchemy as sa

        self._setup()
        t = self.t_objects
        for attempt in range(_RETRIES):
            try:
                with self.engine.begin() as conn:
                    if conn.execute(sa.select(t.c.size).where(t.c.object == staged.object)).first():
                        return
                    conn.execute(
                        t.insert().values(
                            object=staged.object,
                            bundle_fingerprint=staged.fingerprint,
                            model_fingerprint=staged.model_fingerprint,
                            project=staged.project[:200],
                            size=len(staged.data),
                            data=staged.data,
                            created_at=_now(),
                        )
                    )
                return
            except sa.exc.IntegrityError:
                return  # another publisher stored the same bytes meanwhile
            except sa.exc.OperationalError as exc:
                if _busy(exc) and attempt < _RETRIES - 1:
                    time.sleep(random.uniform(0.005, 0.05))
                    continue
                raise self._db("store the bundle", exc) from None
            except sa.exc.DBAPIError as exc:
                raise self._db("store the bundle", exc) from None

    def _has_object(self, obj: str) -> bool:
        import sqlalchemy as sa

        t = self.t_objects
        try:
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(t.c.size).where(t.c.object == obj)).first()
        except sa.exc.DBAPIError as exc:
            raise self._db("read a bundle", exc) from None
        return row is not None

    def _read_object(self, obj: str) -> bytes | None:
        import sqlalchemy as sa

        t = self.t_objects
        try:
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(t.c.data).where(t.c.object == obj)).first()
        except sa.exc.DBAPIError as exc:
            raise self._db("read a bundle", exc) from None
        return bytes(row[0]) if row is not None else None

    def history(self, alias: str) -> list[Move]:
        import sqlalchemy as sa

        check_alias(alias)
        if not self._ready and not self._tables_exist():
            return []
        t = self.t_moves
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(t).where(t.c.alias == alias).order_by(t.c.seq))
                found = [dict(r._mapping) for r in rows]
        except sa.exc.DBAPIError as exc:
            raise self._db("read the alias", exc) from None
        return [Move.parse(r, f"{alias}#{r.get('seq')}") for r in found]

    def current(self, alias: str) -> Move | None:
        import sqlalchemy as sa

        check_alias(alias)
        if not self._ready and not self._tables_exist():
            return None
        t = self.t_moves
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(t).where(t.c.alias == alias).order_by(t.c.seq.desc()).limit(1)
                ).first()
        except sa.exc.DBAPIError as exc:
            raise self._db("read the alias", exc) from None
        return Move.parse(dict(row._mapping), f"{alias}#{row.seq}") if row is not None else None

    def aliases(self) -> list[str]:
        import sqlalchemy as sa

        if not self._ready and not self._tables_exist():
            return []
        t = self.t_moves
        try:
            with self.engine.connect() as conn:
                return sorted(r[0] for r in conn.execute(sa.select(t.c.alias).distinct()))
        except sa.exc.DBAPIError as exc:
            raise self._db("list the aliases", exc) from None

    def _append(self, alias: str, make: Any) -> Move:
        import sqlalchemy as sa

        self._setup()
        t = self.t_moves
        for attempt in range(_RETRIES):
            try:
                with self.engine.begin() as conn:
                    last = conn.execute(
                        sa.select(t.c.seq, t.c.object)
                        .where(t.c.alias == alias)
                        .order_by(t.c.seq.desc())
                        .limit(1)
                    ).first()
                    move = make(last[0] + 1 if last else 1, last[1] if last else None)
                    conn.execute(t.insert().values(**move.to_dict()))
                    if self.dialect == "postgresql":  # delivered when the transaction commits
                        conn.execute(
                            sa.text("SELECT pg_notify(:channel, :alias)"),
                            {"channel": NOTIFY_CHANNEL, "alias": alias},
                        )
                return move
            except sa.exc.IntegrityError:
                time.sleep(random.uniform(0.001, 0.02))  # another publisher took this number
            except sa.exc.OperationalError as exc:
                if not _busy(exc) or attempt == _RETRIES - 1:
                    raise self._db("move the alias", exc) from None
                time.sleep(random.uniform(0.005, 0.05))
            except sa.exc.DBAPIError as exc:
                raise self._db("move the alias", exc) from None
        raise MlreproError(
            f"could not move alias {alias!r}: too many concurrent publishers", hint="try again"
        )

    def wait(self, timeout: float, stop: threading.Event) -> None:
        """PostgreSQL: wake on ``NOTIFY mlrepro_registry``; elsewhere (or if LISTEN fails) poll."""
        if self.dialect != "postgresql":
            stop.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        try:
            conn = self._listen()
            while not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                for _ in conn.notifies(timeout=min(left, 0.5), stop_after=1):
                    return
        except Exception:  # noqa: BLE001 - a lost connection: fall back to polling this time
            self._drop_listener()
            stop.wait(max(deadline - time.monotonic(), 0))

    def _listen(self) -> Any:
        if self._listener is None:
            import psycopg

            url = self.engine.url.set(drivername="postgresql")
            conn = psycopg.connect(
                url.render_as_string(hide_password=False), autocommit=True, connect_timeout=10
            )
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self._listener = conn
        return self._listener

    def _drop_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                self._listener.close()
            self._listener = None

    def close(self) -> None:
        self._drop_listener()
        self.engine.dispose()


def _busy(exc: Exception) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text or "deadlock" in text or "serializ" in text


def open_registry(url: str | os.PathLike[str], *, create: bool = False) -> Registry:
    """A folder path (or ``file://`` URL) or a SQLAlchemy database URL."""
    text = os.fspath(url)
    if not text:
        raise UsageError("--registry is empty", hint="pass a folder or a database URL")
    if text.startswith("file://"):
        return FolderRegistry(Path(text[len("file://") :]), create=create)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        return SqlRegistry(text)
    return FolderRegistry(Path(text), create=create)


def scratch_folder() -> Path:
    """A private folder for fetched bundles (removed by ``remove_scratch``)."""
    return Path(tempfile.mkdtemp(prefix="mlrepro-fetched-"))


def remove_scratch(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
