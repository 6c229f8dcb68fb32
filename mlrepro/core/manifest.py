"""Load and validate ``mlrepro.yaml`` into frozen dataclasses.

Validation is declared as data (``_SPEC``) so that every error names the field, what was
expected and what was found, and unknown keys get the closest valid key as a suggestion.
Nothing here imports pandas or scikit-learn: a no-op ``run`` only needs the manifest.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from mlrepro.core import metrics as metric_names
from mlrepro.core.sqltext import check_source_query
from mlrepro.errors import ManifestError
from mlrepro.guards import callables

MANIFEST_NAME = "mlrepro.yaml"
COLUMN_SELECTORS = ("numeric", "categorical", "all")
ALLOWED_PREFIXES = ("sklearn.",)
MODEL_FORMATS = ("joblib", "skops")


@dataclass(frozen=True)
class Source:
    url: str
    query: str
    timestamp_column: str
    as_of: str
    order_by: tuple[str, ...]
    chunk_size: int = 50_000

    def as_of_utc(self) -> datetime:
        return parse_timestamp(self.as_of, "source.as_of")


@dataclass(frozen=True)
class FeatureStep:
    name: str
    transformer: str
    params: dict[str, Any]
    columns: tuple[str, ...] | str  # a list of names, or a selector from COLUMN_SELECTORS


@dataclass(frozen=True)
class Selection:
    method: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Model:
    estimator: str
    params: dict[str, Any]
    test_size: float = 0.2
    metrics: tuple[str, ...] = ()
    stratify: bool | None = None  # None: stratify for classifiers
    format: str = "joblib"
    accelerate: bool = False  # train also compiles the pipeline (mlrepro.accelerate)


@dataclass(frozen=True)
class PredictIO:
    input: str | None = None  # a CSV/parquet path relative to the project
    query: str | None = None  # or a SQL query against input_url (default: source.url)
    input_url: str | None = None
    output: str | None = None  # a CSV/parquet path relative to the project
    table: str | None = None  # or a table in output_url (default: source.url)
    output_url: str | None = None


@dataclass(frozen=True)
class Manifest:
    name: str
    seed: int
    source: Source
    target: str
    features: tuple[FeatureStep, ...]
    selection: Selection | None
    model: Model
    predict: PredictIO | None
    plugins: tuple[str, ...] = ()
    description: str = ""
    root: Path = field(default=Path("."), compare=False)
    path: Path = field(default=Path(MANIFEST_NAME), compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def excluded_columns(self) -> tuple[str, ...]:
        """Columns that are never features unless a step lists them explicitly."""
        cols = [self.target, self.source.timestamp_column, *self.source.order_by]
        return tuple(dict.fromkeys(cols))

    def allowed_prefixes(self) -> tuple[str, ...]:
        return ALLOWED_PREFIXES + tuple(f"{p}." for p in self.plugins) + self.plugins


# --------------------------------------------------------------------------------------
# Declarative spec: key -> (required, checker). Checkers return the cleaned value.


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 40, 40


def _short(v: Any) -> str:
    text = _REPR.repr(v)  # bounded depth: a deeply nested value cannot blow the stack
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(where: str, expected: str, found: Any) -> ManifestError:
    return ManifestError(
        f"manifest field '{where}': expected {expected}, "
        f"found {_short(found)} ({_type_name(found)})",
        hint=f"fix '{where}' in {MANIFEST_NAME}",
    )


def _str(where: str, v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _fail(where, "a non-empty string", v)
    return v


def _int(where: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _fail(where, "an integer", v)
    return v


def _mapping(where: str, v: Any) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _fail(where, "a mapping (key: value)", v)
    for k in v:
        if not isinstance(k, str):
            raise _fail(f"{where}.{k}", "string keys", k)
    return dict(v)


def _str_list(where: str, v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v:
        raise _fail(where, "a non-empty list of strings", v)
    for i, item in enumerate(v):
        _str(f"{where}[{i}]", item)
    if len(set(v)) != len(v):
        dup = sorted({x for x in v if v.count(x) > 1})
        raise ManifestError(
            f"manifest field '{where}': duplicate entries {dup}", hint="list each name once"
        )
    return tuple(v)


def _class_path(where: str, v: Any) -> str:
    v = _str(where, v)
    if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", v):
        raise _fail(where, "a dotted class path like 'sklearn.preprocessing.StandardScaler'", v)
    return str(v)


def _check_keys(where: str, data: dict[str, Any], spec: dict[str, bool]) -> None:
    for key in data:
        if key not in spec:
            close = difflib.get_close_matches(key, list(spec), n=1, cutoff=0.6)
            label = f"{where}.{key}" if where else key
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else f"valid keys here: {', '.join(sorted(spec))}"
            )
            raise ManifestError(f"manifest field '{label}': unknown key", hint=hint)
    for key, required in spec.items():
        if required and key not in data:
            label = f"{where}.{key}" if where else key
            raise ManifestError(
                f"manifest field '{label}' is required but missing",
                hint=f"add '{key}:' to {'the ' + where + ' section' if where else MANIFEST_NAME}",
            )


def parse_timestamp(text: Any, where: str) -> datetime:
    """Parse an ISO 8601 timestamp; naive values are taken as UTC."""
    if isinstance(text, datetime):
        dt = text
    else:
        if not isinstance(text, str):
            raise _fail(where, "an ISO 8601 timestamp like '2026-06-30T00:00:00Z'", text)
        try:
            dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _fail(where, "an ISO 8601 timestamp like '2026-06-30T00:00:00Z'", text) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _source(data: Any) -> Source:
    data = _mapping("source", data)
    spec = {
        "url": True,
        "query": True,
        "timestamp_column": True,
        "as_of": True,
        "order_by": True,
        "chunk_size": False,
    }
    _check_keys("source", data, spec)
    as_of = data["as_of"]
    if isinstance(as_of, date) and not isinstance(as_of, datetime):  # unquoted YAML date
        as_of = datetime(as_of.year, as_of.month, as_of.day)
    if isinstance(as_of, datetime):  # YAML parses unquoted timestamps itself
        as_of = parse_timestamp(as_of, "source.as_of").isoformat().replace("+00:00", "Z")
    parsed = parse_timestamp(as_of, "source.as_of")
    if parsed > datetime.now(timezone.utc):
        raise ManifestError(
            f"manifest field 'source.as_of': {as_of} is in the future",
            hint="a snapshot can only be reproduced for a point in time that has passed; "
            "use a past timestamp",
        )
    chunk = data.get("chunk_size", 50_000)
    if _int("source.chunk_size", chunk) < 1:
        raise _fail("source.chunk_size", "a positive integer", chunk)
    return Source(
        url=_str("source.url", data["url"]),
        query=check_source_query(_str("source.query", data["query"])),
        timestamp_column=_str("source.timestamp_column", data["timestamp_column"]),
        as_of=as_of,
        order_by=_str_list("source.order_by", data["order_by"]),
        chunk_size=chunk,
    )


def _columns(where: str, v: Any) -> tuple[str, ...] | str:
    if isinstance(v, str):
        if v in COLUMN_SELECTORS:
            return v
        close = difflib.get_close_matches(v, COLUMN_SELECTORS, n=1)
        raise ManifestError(
            f"manifest field '{where}': '{v}' is not a column selector",
            hint=(f"did you mean '{close[0]}'? " if close else "")
            + f"use a list of column names or one of {', '.join(COLUMN_SELECTORS)}",
        )
    return _str_list(where, v)


def _features(data: Any) -> tuple[FeatureStep, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise _fail("features", "a list of steps", data)
    steps: list[FeatureStep] = []
    for i, item in enumerate(data):
        where = f"features[{i}]"
        item = _mapping(where, item)
        _check_keys(
            where, item, {"name": True, "transformer": True, "params": False, "columns": True}
        )
        name = _str(f"{where}.name", item["name"])
        if any(s.name == name for s in steps):
            raise ManifestError(
                f"manifest field '{where}.name': step name '{name}' is used twice",
                hint="give each feature step a unique name",
            )
        steps.append(
            FeatureStep(
                name=name,
                transformer=_class_path(f"{where}.transformer", item["transformer"]),
                params=_mapping(f"{where}.params", item.get("params")),
                columns=_columns(f"{where}.columns", item["columns"]),
            )
        )
    return tuple(steps)


def _selection(data: Any) -> Selection | None:
    if data is None:
        return None
    data = _mapping("selection", data)
    _check_keys("selection", data, {"method": True, "params": False})
    return Selection(
        method=_class_path("selection.method", data["method"]),
        params=_mapping("selection.params", data.get("params")),
    )


def _model(data: Any) -> Model:
    data = _mapping("model", data)
    spec = {
        "estimator": True,
        "params": False,
        "test_size": False,
        "metrics": False,
        "stratify": False,
        "format": False,
        "accelerate": False,
    }
    _check_keys("model", data, spec)
    test_size = data.get("test_size", 0.2)
    if (
        isinstance(test_size, bool)
        or not isinstance(test_size, (int, float))
        or not 0 < test_size < 1
    ):
        raise _fail("model.test_size", "a number between 0 and 1 (exclusive)", test_size)
    metrics = data.get("metrics")
    metrics = () if metrics is None else _str_list("model.metrics", metrics)
    for i, name in enumerate(metrics):
        if name not in metric_names.ALL:
            close = difflib.get_close_matches(name, metric_names.ALL, n=1, cutoff=0.5)
            raise ManifestError(
                f"manifest field 'model.metrics[{i}]': unknown metric '{name}'",
                hint=(f"did you mean '{close[0]}'? " if close else "")
                + f"known metrics: {', '.join(metric_names.ALL)}",
            )
    stratify = data.get("stratify")
    if stratify is not None and not isinstance(stratify, bool):
        raise _fail("model.stratify", "true or false", stratify)
    fmt = data.get("format", "joblib")
    if fmt not in MODEL_FORMATS:
        raise _fail("model.format", f"one of {', '.join(MODEL_FORMATS)}", fmt)
    accelerate = data.get("accelerate", False)
    if not isinstance(accelerate, bool):
        raise _fail("model.accelerate", "true or false", accelerate)
    return Model(
        estimator=_class_path("model.estimator", data["estimator"]),
        params=_mapping("model.params", data.get("params")),
        test_size=float(test_size),
        metrics=metrics,
        stratify=stratify,
        format=fmt,
        accelerate=accelerate,
    )


def _predict(data: Any) -> PredictIO | None:
    if data is None:
        return None
    data = _mapping("predict", data)
    keys = ("input", "query", "input_url", "output", "table", "output_url")
    _check_keys("predict", data, dict.fromkeys(keys, False))
    clean = {k: _str(f"predict.{k}", data[k]) for k in keys if data.get(k) is not None}
    if "input" in clean and "query" in clean:
        raise ManifestError(
            "manifest field 'predict': both 'input' and 'query' are set",
            hint="use 'input' for a CSV/parquet file or 'query' for SQL, not both",
        )
    if "output" in clean and "table" in clean:
        raise ManifestError(
            "manifest field 'predict': both 'output' and 'table' are set",
            hint="use 'output' for a CSV/parquet file or 'table' for a database table, not both",
        )
    return PredictIO(**clean)


_TOP = {
    "name": True,
    "description": False,
    "seed": False,
    "plugins": False,
    "source": True,
    "target": True,
    "features": False,
    "selection": False,
    "model": True,
    "predict": False,
}


def _check_allowed(m: Manifest) -> None:
    prefixes = m.allowed_prefixes()
    paths = [(f"features[{i}].transformer", s.transformer) for i, s in enumerate(m.features)]
    if m.selection:
        paths.append(("selection.method", m.selection.method))
    paths.append(("model.estimator", m.model.estimator))
    for where, path in paths:
        if not any(path.startswith(p) for p in prefixes if p.endswith(".")):
            raise ManifestError(
                f"manifest field '{where}': class path '{path}' is not allowed",
                hint="class paths must come from scikit-learn ('sklearn.') or a module listed "
                "under 'plugins:' in the manifest",
            )


def _check_paths(m: Manifest) -> None:
    """Declared files stay inside the project: a manifest you did not write is untrusted."""
    from mlrepro.guards import confine

    if m.predict and m.predict.input:
        confine.manifest_input(m.root, m.predict.input, "predict.input")
    if m.predict and m.predict.output:
        confine.manifest_output(m.root, m.predict.output, "predict.output")


def from_dict(data: Any, root: Path = Path("."), path: Path | None = None) -> Manifest:
    """Validate a parsed manifest document."""
    if not isinstance(data, dict):
        raise ManifestError(
            f"{MANIFEST_NAME} must be a mapping of keys (name, source, target, model, ...), "
            f"found {_type_name(data)}",
            hint="see the manifest reference in README.md",
        )
    for k in data:
        if not isinstance(k, str):
            raise _fail(str(k), "string keys", k)
    _check_keys("", data, _TOP)
    plugins = data.get("plugins")
    plugins = () if plugins is None else _str_list("plugins", plugins)
    for i, p in enumerate(plugins):
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", p):
            raise _fail(f"plugins[{i}]", "a Python module name like 'mycompany.features'", p)
        why = callables.plugin_problem(p)
        if why:
            raise ManifestError(
                f"manifest field 'plugins[{i}]': module '{p}' {why}",
                hint="plugins: lists your own modules of estimators and functions; "
                "reviewed functions (e.g. numpy.log1p) need no plugin entry",
            )
    seed = data.get("seed", 0)
    if _int("seed", seed) < 0 or seed >= 2**32:
        raise _fail("seed", "an integer between 0 and 2**32-1", seed)
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise _fail("description", "a string", description)
    manifest = Manifest(
        name=_str("name", data["name"]),
        seed=seed,
        source=_source(data["source"]),
        target=_str("target", data["target"]),
        features=_features(data.get("features")),
        selection=_selection(data.get("selection")),
        model=_model(data["model"]),
        predict=_predict(data.get("predict")),
        plugins=plugins,
        description=description,
        root=root,
        path=path or root / MANIFEST_NAME,
        raw=data,
    )
    _check_allowed(manifest)
    _check_paths(manifest)
    return manifest


def find_manifest(project: str | Path | None) -> Path:
    """Resolve ``-p/--project`` (a folder or the manifest file) to the manifest path."""
    p = Path(project) if project else Path.cwd()
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise ManifestError(
            f"no manifest found at {p}",
            hint=f"run mlrepro in a project folder holding {MANIFEST_NAME}, "
            "or pass -p/--project PATH",
        )
    return p


def load(project: str | Path | None = None) -> Manifest:
    """Find, parse and validate the manifest of a project."""
    import yaml

    path = find_manifest(project)
    raw_bytes = path.read_bytes()
    try:
        text = raw_bytes.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw_bytes.decode("utf-16")
        except UnicodeDecodeError:
            raise ManifestError(
                f"{path} is not valid UTF-8 text", hint="save the manifest as UTF-8"
            ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ManifestError(
            f"{path.name} is not valid YAML{where}: {problem}",
            hint="check indentation and quoting around that line",
        ) from None
    except Exception as exc:  # yaml can raise odd errors (recursion, huge numbers)
        raise ManifestError(
            f"{path.name} could not be parsed: {type(exc).__name__}",
            hint="check the YAML syntax",
        ) from None
    return from_dict(data, root=path.parent.resolve(), path=path.resolve())
