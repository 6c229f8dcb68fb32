"""Bad input, table-driven: each case names the exact error type and exit code, a message
that names the problem, a hint that names the fix, and proves no file was corrupted (the
lock is unchanged, or only gained stages that completed, and no stray file appeared).

Cases run the CLI in this process (``mlrepro.cli.main``) on a private project copy: "fresh"
(never run) or "trained" (after a complete run).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import run_cli

from mlrepro.cli import console
from mlrepro.core.atomic import DiskFullError
from mlrepro.errors import (
    ArtifactError,
    ConcurrencyError,
    DataError,
    ManifestError,
    MlreproError,
    PredictionRejected,
    SourceError,
    UsageError,
)
from mlrepro.fingerprint import hash_file

from .helpers import check_integrity, orphan_objects, read_lock, temp_files

Setup = Callable[[Path, pytest.MonkeyPatch], None]
COLUMNS = "visit_id, recorded_at, clinic, age, sex, bmi, bp, s1, s2, s3, s4, s5, s6, progression"


@dataclass(frozen=True)
class Case:
    id: str
    base: str  # "fresh" | "trained"
    args: tuple[str, ...]  # "{p}" is the project folder
    error: type[MlreproError]
    exit_code: int
    problem: str  # regex the message must match
    fix: str  # regex the hint must match
    setup: Setup | None = None
    grows: bool = False  # the lock may gain the stages that completed before the error


# ------------------------------------------------------------------------------ setups


def manifest(old: str, new: str) -> Setup:
    def setup(p: Path, _: pytest.MonkeyPatch) -> None:
        path = p / "mlrepro.yaml"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))

    return setup


def manifest_text(text: str | bytes) -> Setup:
    def setup(p: Path, _: pytest.MonkeyPatch) -> None:
        data = text.encode() if isinstance(text, str) else text
        (p / "mlrepro.yaml").write_bytes(data)

    return setup


def query(**overrides: str) -> Setup:
    """Replace source.query with one that computes some columns differently."""
    cols = [f"{overrides[c]} AS {c}" if c in overrides else c for c in COLUMNS.split(", ")]
    return manifest("SELECT * FROM visits", f"SELECT {', '.join(cols)} FROM visits")


def input_csv(edit: Callable[[pd.DataFrame], pd.DataFrame | str | bytes]) -> Setup:
    """Write in.csv: the example's new visits, edited (or replaced by raw text/bytes)."""

    def setup(p: Path, _: pytest.MonkeyPatch) -> None:
        out = edit(pd.read_csv(p / "data" / "new_visits.csv"))
        if isinstance(out, pd.DataFrame):
            out.to_csv(p / "in.csv", index=False)
        else:
            (p / "in.csv").write_bytes(out.encode() if isinstance(out, str) else out)

    return setup


def set_cell(row: int, col: str, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
        return df

    return edit


def lock_text(text: str) -> Setup:
    def setup(p: Path, _: pytest.MonkeyPatch) -> None:
        (p / "mlrepro.lock").write_text(text)

    return setup


def newer_lock(p: Path, _: pytest.MonkeyPatch) -> None:
    path = p / "mlrepro.lock"
    path.write_text(path.read_text().replace('"lock_format": 2', '"lock_format": 99', 1))


def truncate_snapshot(p: Path, _: pytest.MonkeyPatch) -> None:
    path = p / read_lock(p)["stages"]["extract"]["outputs"]["snapshot"]["path"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_model_byte(p: Path, _: pytest.MonkeyPatch) -> None:
    path = p / read_lock(p)["stages"]["train"]["outputs"]["pipeline"]["path"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncated_parquet(p: Path, _: pytest.MonkeyPatch) -> None:
    df = pd.read_csv(p / "data" / "new_visits.csv")
    df.to_parquet(p / "in.parquet")
    data = (p / "in.parquet").read_bytes()
    (p / "in.parquet").write_bytes(data[: len(data) // 2])


def disk_full(p: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", no_space)


_HELD: list = []  # project locks a case holds, released after the case


def busy(p: Path, _: pytest.MonkeyPatch) -> None:
    """Another process writing the project: its lock held, its pid recorded."""
    from filelock import FileLock

    lock = FileLock(str(p / ".mlrepro" / "project.lock.flock"))
    lock.acquire()
    _HELD.append(lock)
    (p / ".mlrepro" / "project.lock").write_text("4242")


# ------------------------------------------------------------------------------ cases

RUN = ("run", "-p", "{p}")
PREDICT = ("predict", "-p", "{p}", "-i", "{p}/in.csv", "-o", "{p}/out.csv")
NEW_VISITS = input_csv(lambda df: df)

# fmt: off
CASES = [
    # --- manifest ------------------------------------------------------------------------
    Case("malformed-yaml", "fresh", RUN, ManifestError, 2,
         r"not valid YAML at line \d+, column \d+", r"indentation and quoting",
         manifest_text("name: x\nsource: [unclosed\n")),
    Case("unknown-key", "fresh", RUN, ManifestError, 2,
         r"'model\.paramz': unknown key", r"did you mean 'params'\?",
         manifest("  params: {n_estimators", "  paramz: {n_estimators")),
    Case("unknown-top-level-key", "fresh", RUN, ManifestError, 2,
         r"'targte': unknown key", r"did you mean 'target'\?",
         manifest("target: progression", "targte: progression")),
    Case("wrong-type", "fresh", RUN, ManifestError, 2,
         r"'seed': expected an integer, found 'forty-two' \(str\)", r"fix 'seed' in mlrepro\.yaml",
         manifest("seed: 42", "seed: forty-two")),
    Case("test-size-out-of-range", "fresh", RUN, ManifestError, 2,
         r"'model\.test_size': expected a number between 0 and 1", r"fix 'model\.test_size'",
         manifest("test_size: 0.2", "test_size: 1.5")),
    Case("missing-required-key", "fresh", RUN, ManifestError, 2,
         r"'target' is required but missing", r"add 'target:'",
         manifest("target: progression\n", "")),
    Case("empty-manifest", "fresh", RUN, ManifestError, 2,
         r"must be a mapping.*found null", r"manifest reference",
         manifest_text("")),
    Case("no-manifest", "fresh", ("run", "-p", "{p}/nowhere"), ManifestError, 2,
         r"no manifest found at", r"-p/--project"),
    Case("class-not-allowed", "fresh", RUN, ManifestError, 2,
         r"'model\.estimator': class path 'os\.system' is not allowed", r"'plugins:'",
         manifest("sklearn.ensemble.RandomForestRegressor", "os.system")),
    Case("unknown-class", "fresh", RUN, ManifestError, 2,
         r"'sklearn\.ensemble' has no attribute 'RandomForestRegresor'",
         r"did you mean 'sklearn\.ensemble\.RandomForestRegressor'\?",
         manifest("RandomForestRegressor", "RandomForestRegresor")),
    Case("unknown-estimator-parameter", "fresh", RUN, ManifestError, 2,
         r"'model\.params\.n_estimator': RandomForestRegressor has no parameter",
         r"did you mean 'n_estimators'\?",
         manifest("n_estimators:", "n_estimator:")),
    Case("unknown-step-parameter", "fresh", RUN, ManifestError, 2,
         r"'features\[0\]\.params\.strategi': SimpleImputer has no parameter",
         r"did you mean 'strategy'\?",
         manifest("strategy: median", "strategi: median")),
    Case("unknown-metric", "fresh", RUN, ManifestError, 2,
         r"unknown metric 'r3'", r"known metrics: r2, mae",
         manifest("metrics: [r2, mae]", "metrics: [r3, mae]")),
    Case("as-of-in-the-future", "fresh", RUN, ManifestError, 2,
         r"'source\.as_of': .* is in the future", r"use a past timestamp",
         manifest("2026-06-30T00:00:00Z", "2999-01-01T00:00:00Z")),
    Case("as-of-unparsable", "fresh", RUN, ManifestError, 2,
         r"'source\.as_of': expected an ISO 8601 timestamp", r"fix 'source\.as_of'",
         manifest('"2026-06-30T00:00:00Z"', '"last tuesday"')),
    Case("env-var-not-set", "fresh", RUN, ManifestError, 2,
         r"environment variable MLREPRO_UNSET_VAR is not set", r"export MLREPRO_UNSET_VAR=",
         manifest("sqlite:///data/diabetes.db", "sqlite:///${MLREPRO_UNSET_VAR}/diabetes.db")),
    Case("k-larger-than-features", "fresh", RUN, ManifestError, 2,
         r"'selection\.params\.k': k=500 but the features stage produces only \d+ columns",
         r"use k <= \d+",
         manifest("params: {k: 6}", "params: {k: 500}"), grows=True),
    # --- source ----------------------------------------------------------------------------
    Case("unreachable-database", "fresh", RUN, SourceError, 5,
         r"cannot connect to postgresql\+psycopg://u:\*\*\*@127\.0\.0\.1:1/db",
         r"server is running and reachable",
         manifest("sqlite:///data/diabetes.db", "postgresql+psycopg://u:pw@127.0.0.1:1/db")),
    Case("sqlite-file-missing", "fresh", RUN, SourceError, 5,
         r"SQLite database .*nope\.db does not exist", r"check source\.url",
         manifest("data/diabetes.db", "data/nope.db")),
    Case("unknown-driver", "fresh", RUN, SourceError, 5,
         r"cannot use database URL nosuchdb://x/y", r"driver is installed",
         manifest("sqlite:///data/diabetes.db", "nosuchdb://x/y")),
    Case("limit-in-query", "fresh", RUN, ManifestError, 2,
         r"'source\.query': a top-level LIMIT is not allowed", r"remove LIMIT from source\.query",
         manifest("FROM visits", "FROM visits ORDER BY visit_id LIMIT 100")),
    Case("fetch-first-in-query", "fresh", RUN, ManifestError, 2,
         r"'source\.query': a top-level OFFSET is not allowed", r"remove OFFSET",
         manifest("FROM visits", "FROM visits ORDER BY visit_id OFFSET 5 ROWS")),
    Case("sql-error", "fresh", RUN, SourceError, 5,
         r"the source query failed: no such table: visitz", r"check source\.query",
         manifest("FROM visits", "FROM visitz")),
    Case("zero-rows", "fresh", RUN, DataError, 3,
         r"the source query returned zero rows as of 1990", r"check source\.query, source\.as_of",
         manifest("2026-06-30T00:00:00Z", "1990-01-01T00:00:00Z")),
    Case("missing-timestamp-column", "fresh", RUN, DataError, 3,
         r"\['recorded'\] named in source .* are not in the query result",
         r"fix source\.timestamp_column",
         manifest("timestamp_column: recorded_at", "timestamp_column: recorded")),
    Case("missing-target", "fresh", RUN, DataError, 3,
         r"missing column\(s\) \['progresion'\]", r"did you mean 'progresion' -> 'progression'",
         manifest("target: progression", "target: progresion")),
    Case("text-in-numeric-column", "fresh", RUN, DataError, 3,
         r"column 'bmi' mixes incompatible types", r"CAST column 'bmi'",
         query(bmi="CASE WHEN visit_id = 7 THEN 'n/a' ELSE bmi END")),
    # --- training data ---------------------------------------------------------------------
    Case("order-by-not-unique", "fresh", RUN, DataError, 3,
         r"source\.order_by \[clinic\] is not a unique key: \d+ of \d+ rows have the same key",
         r"add columns to source\.order_by until it is unique",
         manifest("order_by: [visit_id]", "order_by: [clinic]")),
    Case("all-missing-column", "fresh", RUN, DataError, 3,
         r"column 's3' has no values: all \d+ training rows are missing", r"leave 's3' out",
         query(s3="CAST(NULL AS REAL)"), grows=True),
    Case("infinite-value", "fresh", RUN, DataError, 3,
         r"column 'bp' has 1 infinite value\(s\) \(rows 4\)", r"replace or filter them",
         query(bp="CASE WHEN visit_id = 5 THEN 9e999 ELSE bp END"), grows=True),
    Case("missing-target-value", "fresh", RUN, DataError, 3,
         r"target 'progression' has 1 missing value\(s\) \(rows \[2\]\)", r"filter those rows",
         query(progression="CASE WHEN visit_id = 3 THEN NULL ELSE progression END"),
         grows=True),
    Case("text-column-in-numeric-step", "fresh", RUN, DataError, 3,
         r"step 'impute' \(SimpleImputer\) needs numbers, but column\(s\) \['clinic'\] hold text",
         r"encode them",
         manifest("columns: [bmi, bp]", "columns: [bmi, bp, clinic]"), grows=True),
    # --- prediction input ------------------------------------------------------------------
    Case("unseen-category", "trained", PREDICT, PredictionRejected, 1,
         r"row 3: column 'clinic': unseen category", r"--on-invalid skip\|quarantine",
         input_csv(set_cell(3, "clinic", "moon"))),
    Case("text-in-numeric-input", "trained", PREDICT, PredictionRejected, 1,
         r"row 2: column 'bmi': not a number", r"--on-invalid",
         input_csv(set_cell(2, "bmi", "tall"))),
    Case("infinite-input", "trained", PREDICT, PredictionRejected, 1,
         r"row 1: column 'bp': infinite value", r"--on-invalid",
         input_csv(set_cell(1, "bp", "inf"))),
    Case("missing-value-input", "trained", PREDICT, PredictionRejected, 1,
         r"row 0: column 's1': missing value", r"--on-invalid",
         input_csv(set_cell(0, "s1", None))),
    Case("missing-input-column", "trained", PREDICT, DataError, 3,
         r"prediction input: missing column\(s\) \['bmi'\]", r"provide these columns",
         input_csv(lambda df: df.drop(columns=["bmi"]))),
    Case("empty-input-file", "trained", PREDICT, DataError, 3,
         r"input file in\.csv is empty", r"header row",
         input_csv(lambda df: "")),
    Case("header-only-input", "trained", PREDICT, DataError, 3,
         r"prediction input has no rows", r"at least one row",
         input_csv(lambda df: df.head(0))),
    Case("bad-encoding", "trained", PREDICT, DataError, 3,
         r"in\.csv is not valid utf-8 text", r"--encoding",
         input_csv(lambda df: df.to_csv(index=False).replace("west", "süd").encode("latin-1"))),
    Case("duplicate-header", "trained", PREDICT, DataError, 3,
         r"header names column\(s\) \['bmi'\] more than once", r"unique name",
         input_csv(lambda df: df.to_csv(index=False).replace(",bp,", ",bmi,", 1))),
    Case("ragged-csv", "trained", PREDICT, DataError, 3,
         r"in\.csv is not valid CSV", r"number of fields",
         input_csv(lambda df: df.to_csv(index=False) + ",".join("1" * 15) + "\n")),
    Case("truncated-parquet-input", "trained",
         ("predict", "-p", "{p}", "-i", "{p}/in.parquet", "-o", "{p}/out.csv"), DataError, 3,
         r"in\.parquet is not a readable parquet file", r"complete",
         truncated_parquet),
    Case("unsupported-input-type", "trained",
         ("predict", "-p", "{p}", "-i", "{p}/in.txt", "-o", "{p}/out.csv"), UsageError, 2,
         r"unsupported file type '\.txt'", r"\.csv or \.parquet"),
    Case("input-file-missing", "trained",
         ("predict", "-p", "{p}", "-i", "{p}/nope.csv", "-o", "{p}/out.csv"), UsageError, 2,
         r"input file .*nope\.csv does not exist", r"--input path"),
    Case("bad-on-invalid", "trained", (*PREDICT, "--on-invalid", "maybe"), UsageError, 2,
         r"--on-invalid 'maybe' is not valid", r"fail, skip, quarantine",
         NEW_VISITS),
    Case("unknown-encoding", "trained", (*PREDICT, "--encoding", "klingon"), UsageError, 2,
         r"unknown text encoding 'klingon'", r"--encoding latin-1",
         NEW_VISITS),
    # --- lock and artifacts ----------------------------------------------------------------
    Case("lock-from-newer-mlrepro", "trained", RUN, ArtifactError, 4,
         r"mlrepro\.lock has format 99", r"upgrade mlrepro",
         newer_lock),
    Case("lock-not-json", "trained", RUN, ArtifactError, 4,
         r"mlrepro\.lock is not valid JSON", r"restore mlrepro\.lock from version control",
         lock_text("{oops")),
    Case("truncated-snapshot", "trained", ("features", "--force", "-p", "{p}"), ArtifactError, 4,
         r"\.parquet does not match its recorded hash", r"restore the file",
         truncate_snapshot),
    Case("tampered-model", "trained", PREDICT, ArtifactError, 4,
         r"\.joblib does not match its recorded hash.*refusing to load it", r"restore the file",
         flip_model_byte),
    Case("disk-full", "trained", ("run", "--force", "-p", "{p}"), DiskFullError, 4,
         r"no space left on device", r"free some disk space.*intact",
         disk_full),
    # --- usage -----------------------------------------------------------------------------
    Case("stage-out-of-order", "fresh", ("train", "-p", "{p}"), UsageError, 2,
         r"stage 'train' needs the output of 'features, select'",
         r"run 'mlrepro features' first"),
    Case("predict-before-train", "fresh", PREDICT, UsageError, 2,
         r"stage 'train' has not run yet", r"run 'mlrepro train'",
         NEW_VISITS),
    Case("project-busy", "trained", RUN, ConcurrencyError, 2,
         r"another mlrepro process \(pid 4242\) is writing this project", r"--wait SECONDS",
         busy),
]
# fmt: on


# ------------------------------------------------------------------------------ the test


def _files(project: Path) -> dict[str, str]:
    return {
        p.relative_to(project).as_posix(): hash_file(p) for p in project.rglob("*") if p.is_file()
    }


# bookkeeping beside the lock: the writer lock, and the caches that only save work (the stat
# cache of artifact hashes and the environment record's cache); never named by the lock
LOCK_FILES = {
    ".mlrepro/project.lock",
    ".mlrepro/project.lock.flock",
    ".mlrepro/statcache.json",
    ".mlrepro/envcache.json",
}


def test_enough_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, request, monkeypatch, capsys) -> None:
    project = request.getfixturevalue("small_project" if case.base == "fresh" else "trained_copy")
    if case.setup:
        case.setup(project, monkeypatch)
    before = _files(project)
    lock_before = read_lock(project) if case.grows else None

    seen: list[MlreproError] = []
    original = console.print_error

    def record(exc: MlreproError) -> None:
        seen.append(exc)
        original(exc)

    monkeypatch.setattr(console, "print_error", record)
    try:
        code = run_cli(*[a.replace("{p}", str(project)) for a in case.args]).code
    finally:
        while _HELD:
            _HELD.pop().release()
    err = capsys.readouterr().err

    # the right error, exit code, message (problem) and hint (fix), shown to the user
    assert len(seen) == 1, err
    exc = seen[0]
    assert type(exc) is case.error, f"{type(exc).__name__}: {exc}"
    assert code == case.exit_code == exc.exit_code
    assert re.search(case.problem, exc.message), exc.message
    assert exc.hint and re.search(case.fix, exc.hint), exc.hint
    assert exc.message in err and exc.hint in err
    assert "Traceback" not in err

    # nothing corrupted, nothing stray
    after = _files(project)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    if case.grows:
        lock = check_integrity(project, fingerprints=False)
        assert lock is not None
        if lock_before:
            for stage, rec in lock_before["stages"].items():
                assert lock["stages"].get(stage) == rec or stage not in lock["stages"]
        allowed = {"mlrepro.lock"} | {
            r["path"] for s in lock["stages"].values() for r in s["outputs"].values() if "path" in r
        }
        assert changed <= allowed | LOCK_FILES, sorted(changed - allowed - LOCK_FILES)
        assert orphan_objects(project) == []
    else:  # not a byte changed, not a file added (the lock and every artifact as before)
        assert changed <= LOCK_FILES, sorted(changed - LOCK_FILES)
    assert temp_files(project) == []
