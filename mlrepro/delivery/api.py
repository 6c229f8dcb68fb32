"""Embedded Python API: load a handoff bundle once, predict in-process.

    from mlrepro import load_bundle

    model = load_bundle("diabetes.mlrepro")       # verified before anything is unpickled
    predictions = model.predict(frame)             # same validation as the CLI

Errors are ``MlreproError`` subclasses (``message`` + ``hint``): ``ArtifactError`` for a
missing, damaged or tampered bundle, ``DataError`` for missing columns, and
``PredictionRejected`` for invalid rows in strict ``predict``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from mlrepro.errors import ArtifactError, DataError, EnvironmentMismatch, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from mlrepro.predict.contract import Contract
    from mlrepro.predict.scoring import ChunkResult

__all__ = [
    "Bundle",
    "BundleMetadata",
    "ColumnSpec",
    "EnvironmentWarning",
    "FollowingBundle",
    "IgnoredColumnsWarning",
    "PredictionResult",
    "PredictionSummary",
    "Records",
    "Validation",
    "load_bundle",
]

#: What ``predict``/``validate`` accept: a DataFrame, one record, or a list of records.
Records = Union["pd.DataFrame", Mapping[str, Any], Sequence[Mapping[str, Any]]]

# Packages whose version can change what a pickled pipeline predicts.
_BOOSTING = ("lightgbm", "xgboost", "catboost")  # only when the bundle's model used one
_RESULT_PACKAGES = ("scikit-learn", "numpy", "scipy", "joblib", *_BOOSTING)


class IgnoredColumnsWarning(UserWarning):
    """Input columns the model does not use were ignored."""


class EnvironmentWarning(UserWarning):
    """The bundle was trained with other versions of packages that affect predictions."""


@dataclass(frozen=True)
class ColumnSpec:
    """One input column the model needs, as the training data had it."""

    name: str
    dtype: str  # pandas dtype of the training data, e.g. "float64", "str"
    nullable: bool  # False: a missing value is rejected
    categories: tuple[Any, ...] | None  # the allowed values of a categorical column


@dataclass(frozen=True)
class BundleMetadata:
    """What the bundle records about its model; ``raw`` holds the full metadata.json."""

    project: str
    task: str  # "regression" | "classification"
    target: str
    classes: tuple[Any, ...] | None
    bundle_fingerprint: str  # blake3 of the bundle index: pin it with expect_fingerprint
    model_fingerprint: str  # content fingerprint of the fitted pipeline (as in mlrepro.lock)
    input_columns: tuple[str, ...]  # in the order the pipeline receives them
    id_columns: tuple[str, ...]  # copied to the output when present
    features: tuple[str, ...]  # selected features, in model order
    estimator: str
    hyperparameters: Mapping[str, Any]
    metrics: Mapping[str, float]  # on the held-out rows
    as_of: str  # the training data's point in time
    training_rows: int
    fingerprints: Mapping[str, Mapping[str, str]]  # stage -> artifact -> fingerprint
    environment: Mapping[str, Any]  # Python and package versions at training time
    card: str  # the model card (markdown)
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, meta: Mapping[str, Any], fingerprint: str, card: str) -> BundleMetadata:
        classes = meta.get("classes")
        return cls(
            project=meta["project"],
            task=meta["task"],
            target=meta["target"],
            classes=tuple(classes) if classes is not None else None,
            bundle_fingerprint=fingerprint,
            model_fingerprint=meta["model_fingerprint"],
            input_columns=tuple(meta["input_columns"]),
            id_columns=tuple(meta["id_columns"]),
            features=tuple(meta["features"]),
            estimator=meta["estimator"],
            hyperparameters=dict(meta["hyperparameters"]),
            metrics=dict(meta["metrics"]),
            as_of=meta["data"]["as_of"],
            training_rows=int(meta["data"]["rows"]),
            fingerprints={k: dict(v) for k, v in meta["fingerprints"].items()},
            environment=dict(meta["environment"]),
            card=card,
            raw=dict(meta),
        )


@dataclass(frozen=True)
class Validation:
    """Result of checking records against the model's input contract (no prediction)."""

    valid: pd.DataFrame  # passing rows, coerced, model column order, input index labels
    rejects: pd.DataFrame  # "row" (0-based position), input columns as text, "reason"
    extra: tuple[str, ...]  # input columns the model does not use

    @property
    def ok(self) -> bool:
        return len(self.rejects) == 0

    @property
    def reasons(self) -> dict[int, str]:
        """{row position: reason} for every rejected row."""
        return _reasons(self.rejects)


@dataclass(frozen=True)
class PredictionResult:
    """Predictions of the valid rows and the rejected rows with reasons."""

    predictions: pd.DataFrame  # indexed by the input's labels of the predicted rows
    rejects: pd.DataFrame  # as in Validation.rejects, indexed by the input's labels

    @property
    def ok(self) -> bool:
        return len(self.rejects) == 0


@dataclass(frozen=True)
class PredictionSummary:
    """What a batch prediction (``predict_file``) did."""

    rows: int
    predicted: int
    rejected: int
    fingerprint: str  # content fingerprint of the predictions written
    model_fingerprint: str
    output: str
    rejects: str | None
    engine: str

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class Bundle:
    """A verified, loaded handoff bundle. Create it with ``load_bundle``.

    ``predict``, ``predict_valid`` and ``validate`` take a DataFrame, one record (a mapping)
    or a list of records; they do not modify their input and are safe to call from several
    threads at once.
    """

    def __init__(
        self,
        *,
        path: Path,
        metadata: BundleMetadata,
        contract: Contract,
        columns: tuple[ColumnSpec, ...],
        pipeline: Any,
        runtime: str = "sklearn",
        acceleration: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.metadata = metadata
        self.contract = contract
        self.columns = columns
        # the fitted scikit-learn Pipeline (features, select, model), or, with runtime
        # "accelerated", it paired with its compiled program (predict.scoring)
        self.pipeline = pipeline
        self.runtime = runtime  # "accelerated" or "sklearn": what scores this bundle
        self.acceleration = acceleration  # the bundle's acceleration.json (None: not built)

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"<Bundle {m.project!r} {m.task} model={m.model_fingerprint[:15]} "
            f"inputs={len(m.input_columns)} runtime={self.runtime} path={str(self.path)!r}>"
        )

    @property
    def fingerprint(self) -> str:
        """The bundle's fingerprint (pin it with ``load_bundle(..., expect_fingerprint=)``)."""
        return self.metadata.bundle_fingerprint

    @property
    def model_fingerprint(self) -> str:
        return self.metadata.model_fingerprint

    @property
    def card(self) -> str:
        return self.metadata.card

    @property
    def output_columns(self) -> list[str]:
        """Columns of ``predict``'s result (id columns only when the input has them)."""
        from mlrepro.predict.scoring import output_columns

        predicted = output_columns(self.metadata.task, self.metadata.classes)
        return [*self.metadata.id_columns, *predicted, "model_fingerprint"]

    # ------------------------------------------------------------------ in memory
    def validate(self, data: Records) -> Validation:
        """Check records against the input contract without predicting.

        Missing columns raise ``DataError``; invalid rows are listed in ``rejects``. The model
        itself may still reject a row that passes (``predict_valid`` reports those too).
        """
        import numpy as np

        from mlrepro.predict.contract import check_columns, invalid_rows
        from mlrepro.predict.scoring import rejects_frame

        frame = _frame(data)
        chunk = frame.reset_index(drop=True)
        extra = check_columns([str(c) for c in chunk.columns], self.contract)
        valid, reasons = invalid_rows(chunk[self.contract.input_columns], self.contract)
        ok = np.ones(len(chunk), dtype=bool)
        ok[list(reasons)] = False
        valid = valid.set_axis(frame.index[ok], axis=0)
        rejects = rejects_frame(chunk, ok, reasons).set_axis(frame.index[~ok], axis=0)
        return Validation(valid=valid, rejects=rejects, extra=tuple(extra))

    def predict(self, data: Records, *, keep: Sequence[str] = ()) -> pd.DataFrame:
        """Predict every row, or raise ``PredictionRejected`` naming the invalid rows.

        The result has one row per input row, with the input's index, and the columns of
        ``output_columns`` (plus any ``keep`` columns copied from the input).
        """
        from mlrepro.predict.scoring import rejected_error

        frame = _frame(data)
        result = self._score(frame, keep, isolate=False)
        if len(result.rejects):
            raise rejected_error(_reasons(result.rejects))
        return result.predictions.set_axis(frame.index, axis=0)

    def predict_valid(self, data: Records, *, keep: Sequence[str] = ()) -> PredictionResult:
        """Predict the valid rows and return the invalid ones with reasons (quarantine)."""
        import numpy as np

        frame = _frame(data)
        result = self._score(frame, keep, isolate=True)
        ok = np.ones(len(frame), dtype=bool)
        ok[result.rejects["row"].to_numpy(dtype="int64")] = False
        return PredictionResult(
            predictions=result.predictions.set_axis(frame.index[ok], axis=0),
            rejects=result.rejects.set_axis(frame.index[~ok], axis=0),
        )

    def _score(self, frame: pd.DataFrame, keep: Sequence[str], isolate: bool) -> ChunkResult:
        from mlrepro.predict.contract import ignored_columns
        from mlrepro.predict.scoring import score_chunk

        result = score_chunk(self.pipeline, frame, self.contract, keep=tuple(keep), isolate=isolate)
        if result.extra:
            warnings.warn(ignored_columns(result.extra), IgnoredColumnsWarning, stacklevel=3)
        return result

    # ------------------------------------------------------------------ batch
    def predict_file(
        self,
        input: str | Path,
        output: str | Path,
        *,
        on_invalid: str = "fail",
        rejects: str | Path | None = None,
        keep: Sequence[str] = (),
        encoding: str = "utf-8",
        chunk_rows: int = 100_000,
        engine: str = "local",
        scheduler: str | None = None,
        workers: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> PredictionSummary:
        """Stream a CSV/parquet file through the model into a CSV/parquet file.

        Same as ``mlrepro predict --bundle``: bounded memory, the output appears only when
        complete, ``on_invalid`` is ``fail``, ``skip`` or ``quarantine`` (needs ``rejects``),
        ``engine="dask"`` runs partitions on a Dask cluster (``scheduler`` address, or a
        local cluster of ``workers`` processes).
        """
        from mlrepro.predict.io import predict_io

        def warn(msg: str) -> None:
            warnings.warn(msg, IgnoredColumnsWarning, stacklevel=4)

        summary = predict_io(
            self.pipeline,
            self.contract,
            root=Path.cwd(),
            default_url=None,
            input=Path(input),
            output=Path(output),
            on_invalid=on_invalid,
            rejects=Path(rejects) if rejects is not None else None,
            keep=tuple(keep),
            encoding=encoding,
            chunk_rows=chunk_rows,
            engine=engine,
            scheduler=scheduler,
            workers=workers,
            on_progress=on_progress,
            warn=warn,
        )
        return PredictionSummary(
            rows=summary["rows"],
            predicted=summary["predicted"],
            rejected=summary["rejected"],
            fingerprint=summary["fingerprint"],
            model_fingerprint=summary["model_fingerprint"],
            output=summary["output"],
            rejects=summary.get("rejects"),
            engine=summary["engine"],
        )

    def environment_diff(self) -> list[str]:
        """Differences between the training environment and this one, e.g. package versions."""
        from mlrepro.environment import record as env

        return env.diff(
            dict(self.metadata.environment), env.capture_like(dict(self.metadata.environment))
        )


def _reasons(rejects: pd.DataFrame) -> dict[int, str]:
    return dict(zip(rejects["row"].tolist(), rejects["reason"].tolist(), strict=True))


def _frame(data: Records) -> pd.DataFrame:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        return pd.DataFrame([dict(data)])
    if isinstance(data, Sequence) and all(isinstance(r, Mapping) for r in data):
        return pd.DataFrame([dict(r) for r in data])
    raise DataError(
        f"expected a DataFrame, a record (mapping) or a list of records, got {type(data).__name__}",
        hint="pass e.g. pandas.DataFrame(rows) or [{'column': value, ...}]",
    )


def _unpickle(data: bytes, path: Path) -> Any:
    import io

    import joblib

    try:
        return joblib.load(io.BytesIO(data))
    except Exception as exc:  # a missing plugin module, an incompatible library version...
        raise ArtifactError(
            f"bundle {path.name}: the pipeline cannot be loaded in this environment "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})",
            hint="install the package versions the bundle records (mlrepro inspect lists them)",
        ) from None


def _check_environment(metadata: BundleMetadata, strict: bool) -> None:
    from mlrepro.delivery.envrecord import class_paths_of
    from mlrepro.environment import record as env

    now, then = env.capture(), dict(metadata.environment)
    if strict:
        bad = [e for e in env.ranked(then, now, class_paths_of(dict(metadata.raw))) if e["matters"]]
        if bad:
            shown = "; ".join(e["text"] for e in bad[:5])
            more = f" ... ({len(bad)} in all)" if len(bad) > 5 else ""
            raise EnvironmentMismatch(
                f"bundle {metadata.project!r}: {len(bad)} package(s) that matter differ from "
                f"training: {shown}{more}; refusing to load it (strict environment check)",
                hint="build the recorded environment with 'mlrepro env recreate DIR --bundle "
                "FILE' (or install 'mlrepro env export --bundle FILE'), or drop the strict "
                "check (--strict-env / strict_env=True)",
            )
    diffs = [
        f"{name} {then.get('packages', {}).get(name)} -> {now['packages'].get(name)}"
        for name in _RESULT_PACKAGES
        if (name not in _BOOSTING or name in then.get("packages", {}))
        and then.get("packages", {}).get(name) != now["packages"].get(name)
    ]
    if then.get("python") and then.get("python") != now["python"]:
        diffs.insert(0, f"Python {then['python']} -> {now['python']}")
    if diffs:
        warnings.warn(
            f"bundle {metadata.project!r} was trained with other versions ({'; '.join(diffs)}): "
            "predictions may differ slightly",
            EnvironmentWarning,
            stacklevel=3,
        )


def _check_schema(contract: Contract, path: Path) -> None:
    """Refuse a bundle whose stored schema cannot validate every input column.

    Without this, an index-consistent bundle with a damaged ``schema.yaml`` would load and
    predict with no input validation at all.
    """
    try:
        described = set(contract.schema().columns)
    except Exception as exc:
        described, why = set(), f" ({type(exc).__name__})"
    else:
        why = ""
    missing = [c for c in contract.input_columns if c not in described]
    if missing:
        raise ArtifactError(
            f"bundle {path.name}: its input schema{why} does not describe input column(s) "
            f"{missing[:5]}, so its input could not be validated; refusing to load it",
            hint="rebuild the bundle with 'mlrepro bundle'",
        )


def load_reporting(
    path: str | Path | None,
    *,
    expect_fingerprint: str | None,
    report: Callable[[str], None],
    **options: Any,
) -> Any:
    """``load_bundle`` for a long-running command: its warnings go to ``report``, once each.

    ``options`` are ``load_bundle``'s (``strict_env``, ``trusted_keys``, ``registry``, ...).
    """
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bundle = load_bundle(path, expect_fingerprint=expect_fingerprint, **options)
    for w in caught:
        report(str(w.message))
    return bundle


def load_bundle(
    path: str | Path | None = None,
    *,
    expect_fingerprint: str | None = None,
    check_environment: bool = True,
    strict_env: bool = False,
    trusted_keys: Sequence[Any] | None = None,
    registry: str | Path | None = None,
    alias: str | None = None,
    follow: bool = False,
    poll: float = 2.0,
    allow_contract_change: bool = False,
    limits: Any = None,
    runtime: str = "auto",
    warm_up: bool = True,
) -> Any:
    """Load a ``.mlrepro`` bundle: verify every member, then unpickle the pipeline.

    ``expect_fingerprint`` pins the exact bundle (as printed by ``mlrepro bundle`` and
    ``mlrepro inspect``): anything else is refused before unpickling. ``trusted_keys``
    (paths of ``NAME.pub`` files, or loaded keys) refuses a bundle that is unsigned or not
    signed by one of them, also before unpickling. With ``check_environment`` an
    ``EnvironmentWarning`` names package versions that differ from training. With
    ``strict_env`` a difference in a package that matters (the packages the pipeline's
    classes come from and their dependencies) raises ``EnvironmentMismatch`` (exit code 1)
    before anything is unpickled. Raises ``ArtifactError`` (exit code 4 in the CLI) for a
    missing, damaged or tampered bundle. ``limits`` (a ``mlrepro.delivery.bundle.Limits``)
    overrides the size, compression-ratio and JSON-depth caps checked before anything is
    decompressed.

    ``registry=URL, alias=NAME`` loads the bundle the alias names instead of ``path``; with
    ``follow=True`` the result is a ``FollowingBundle`` that checks the alias every ``poll``
    seconds and swaps to the new model once it passed every check (see README "Registry").

    ``runtime`` picks what scores: ``"auto"`` the bundle's accelerated program when it has
    one (``mlrepro bundle --accelerate``) and numba is installed, else scikit-learn;
    ``"accelerated"`` refuses a bundle without a program; ``"sklearn"`` ignores it.
    ``warm_up`` compiles the accelerated kernels while loading (no pause on the first
    predict: what a server wants); ``warm_up=False`` compiles each on first use, so a
    one-shot batch job compiles only the kernel it runs (``mlrepro predict --bundle``).
    """
    from mlrepro.delivery.runtime import check_runtime, choose

    check_runtime(runtime)
    if registry is not None or alias is not None:
        if path is not None or registry is None or alias is None:
            raise UsageError(
                "load_bundle needs either a path, or registry= and alias= (not both)",
                hint="e.g. load_bundle(registry='./registry', alias='production')",
            )
        return _from_registry(
            registry,
            alias,
            trusted_keys=trusted_keys,
            follow=follow,
            poll=poll,
            allow_contract_change=allow_contract_change,
            check_environment=check_environment,
            runtime=runtime,
            warm_up=warm_up,
        )
    if path is None:
        raise UsageError("load_bundle needs a path", hint="e.g. load_bundle('model.mlrepro')")
    if follow:
        raise UsageError("follow=True needs registry= and alias=", hint="or drop follow=True")
    from mlrepro.delivery import bundle as fmt
    from mlrepro.delivery import card
    from mlrepro.predict.contract import Contract

    verified = fmt.read_verified(path, expect_fingerprint, limits)
    if trusted_keys:
        from mlrepro.delivery import signing

        signing.check_bundle(verified, signing.trusted(trusted_keys))
    meta = verified.metadata()
    if meta.get("model_fingerprint") != verified.index.get("model_fingerprint"):
        raise ArtifactError(
            f"bundle {verified.path.name}: its index and metadata name different models",
            hint="rebuild the bundle with 'mlrepro bundle'",
        )
    try:
        metadata = BundleMetadata.from_json(meta, verified.fingerprint, verified.text(fmt.CARD))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        what = f"field {exc.args[0]!r} is missing" if isinstance(exc, KeyError) else "is malformed"
        raise fmt.malformed(verified.path, fmt.METADATA, what) from None
    schema_yaml = verified.text(fmt.SCHEMA)
    contract = Contract(
        input_columns=list(metadata.input_columns),
        schema_yaml=schema_yaml,
        model_fingerprint=metadata.model_fingerprint,
        id_columns=list(metadata.id_columns),
        task=metadata.task,
        classes=list(metadata.classes) if metadata.classes is not None else None,
        open_columns=list(meta.get("open_categories") or []),
    )
    _check_schema(contract, verified.path)
    columns = tuple(
        ColumnSpec(
            name=s["name"],
            dtype=s["dtype"],
            nullable=s["nullable"],
            categories=tuple(s["categories"]) if s["categories"] else None,
        )
        for s in card.column_specs(contract.schema_yaml, list(metadata.input_columns))
    )
    if check_environment or strict_env:
        _check_environment(metadata, strict_env)
    pipeline = _unpickle(verified.members[fmt.PIPELINE], verified.path)
    if not callable(getattr(pipeline, "predict", None)):
        raise fmt.malformed(
            verified.path, fmt.PIPELINE, f"holds a {type(pipeline).__name__}, not a fitted model"
        )
    chosen = choose(
        verified, pipeline, metadata.task, runtime, warm_up, list(metadata.input_columns)
    )
    return Bundle(
        path=verified.path,
        metadata=metadata,
        contract=contract,
        columns=columns,
        pipeline=chosen.pipeline,
        runtime=chosen.name,
        acceleration=chosen.record,
    )


class FollowingBundle:
    """A bundle that follows a registry alias (``load_bundle(..., follow=True)``).

    Every call uses the generation current when it starts, so one call's predictions all
    come from one model (its ``model_fingerprint`` column says which). ``status()`` tells
    the alias, the current model, the last swap and the last refusal; ``close()`` stops
    following (also on ``with ... as model:`` exit).
    """

    def __init__(self, follower: Any) -> None:
        self.follower = follower

    @property
    def bundle(self) -> Bundle:
        return self.follower.current.bundle

    def __getattr__(self, name: str) -> Any:  # metadata, contract, columns, card, ...
        if name == "follower":
            raise AttributeError(name)
        return getattr(self.follower.current.bundle, name)

    def __repr__(self) -> str:
        return f"<FollowingBundle alias={self.follower.alias!r} {self.bundle!r}>"

    def predict(self, data: Records, *, keep: Sequence[str] = ()) -> pd.DataFrame:
        bundle = self.bundle
        frame = _frame(data)
        out = bundle.predict(frame, keep=keep)
        self.follower.remember(frame)
        return out

    def predict_valid(self, data: Records, *, keep: Sequence[str] = ()) -> PredictionResult:
        bundle = self.bundle
        frame = _frame(data)
        result = bundle.predict_valid(frame, keep=keep)
        if len(result.predictions):
            self.follower.remember(frame.loc[result.predictions.index])
        return result

    def validate(self, data: Records) -> Validation:
        return self.bundle.validate(data)

    def check_now(self) -> str:
        """Look at the alias now (instead of waiting for the next poll)."""
        return self.follower.check()

    def status(self) -> dict[str, Any]:
        return self.follower.status()

    def close(self) -> None:
        self.follower.close()

    def __enter__(self) -> FollowingBundle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _from_registry(
    registry: str | Path,
    alias: str,
    *,
    trusted_keys: Sequence[Any] | None,
    follow: bool,
    poll: float,
    allow_contract_change: bool,
    check_environment: bool,
    runtime: str = "auto",
    warm_up: bool = True,
) -> Any:
    import functools

    from mlrepro.delivery import signing
    from mlrepro.delivery.follow import Follower
    from mlrepro.delivery.registry import open_registry

    reg = open_registry(registry)
    try:
        follower = Follower(
            reg,
            alias,
            trusted_keys=signing.trusted(trusted_keys),
            allow_contract_change=allow_contract_change,
            poll=poll,
            check_environment=check_environment,
            log=_log,
            load=functools.partial(load_bundle, warm_up=warm_up),
            runtime=runtime,
        )
    except BaseException:
        reg.close()
        raise
    if not follow:
        bundle = follower.current.bundle
        follower.close()  # the bundle is in memory; the fetched file is no longer needed
        return bundle
    return FollowingBundle(follower.start())


def _log(message: str) -> None:
    import logging

    logger = logging.getLogger("mlrepro.follow")
    (logger.warning if message.startswith(("refused", "cannot", "alias check")) else logger.info)(
        message
    )
