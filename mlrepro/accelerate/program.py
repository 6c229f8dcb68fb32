"""The compiled program: input loading, feature ops on float64 slots, the model, its link.

A ``Program`` is data only (a JSON-able header and named numpy arrays, see
``fileformat``); this module evaluates it. Every operation mirrors scikit-learn's float64
arithmetic in the same order, so results are bitwise identical in practice; anything the
program cannot reproduce exactly makes ``predict`` return ``None`` (the caller then takes
the reference path): inputs sklearn rejects (inf, text in a number column, an unknown
category under ``handle_unknown='error'``), dtypes it would treat differently (float32,
nullable extension dtypes, bool), missing categories, integers beyond 2**53.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

FORMAT = 1
EXACT_INT = 2**53
SERIAL_ROWS = 4096  # below this a batch is evaluated single-threaded
MASK_MIN_ROWS = 64  # fewer rows than this are walked even where leaf masks exist
BATCH_ROWS = 65536  # a larger frame is evaluated in slices of this many rows
LGBM_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold


class _Fallback(Exception):
    """Internal: this batch must take the reference path."""


def _kernels() -> Any:
    from mlrepro.accelerate import kernels

    return kernels


def _expit(x: np.ndarray) -> np.ndarray:
    from scipy import special

    return special.expit(x)


def _softmax(raw: np.ndarray) -> np.ndarray:
    """sklearn.utils.extmath.softmax(copy=True), operation for operation."""
    X = np.array(raw, copy=True)
    max_prob = np.reshape(np.max(X, axis=1), (-1, 1))
    X -= max_prob
    np.exp(X, out=X)
    sum_prob = np.reshape(np.sum(X, axis=1), (-1, 1))
    X /= sum_prob
    return X


# ---- input loading -------------------------------------------------------------------


def _num_column(series: Any) -> np.ndarray:
    kind = getattr(series.dtype, "kind", "O")
    if not isinstance(series.dtype, np.dtype):
        raise _Fallback
    if kind == "f" and series.dtype == np.float64:
        return np.asarray(series, dtype=np.float64)
    if kind in "iu":
        raw = np.asarray(series)
        if raw.size and (raw.max() > EXACT_INT or (kind == "i" and raw.min() < -EXACT_INT)):
            raise _Fallback
        return raw.astype(np.float64)
    raise _Fallback


def _str_column(series: Any) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        raise _Fallback
    arr = np.asarray(series, dtype=object)
    if pd.api.types.infer_dtype(arr, skipna=False) != "string":
        raise _Fallback  # missing values, numbers, bytes, mixed: the reference path decides
    return arr


def _num_value(value: Any) -> float:
    if type(value) is float:
        return value
    if value is None:
        return math.nan
    if isinstance(value, (bool, np.bool_)):
        raise _Fallback
    if isinstance(value, (int, np.integer)):
        if abs(int(value)) > EXACT_INT:
            raise _Fallback
        return float(value)
    if isinstance(value, (float, np.floating)) and not isinstance(value, np.float32):
        return float(value)
    raise _Fallback


def _num_codes(values: np.ndarray, cats: np.ndarray) -> np.ndarray:
    if np.isnan(values).any():
        raise _Fallback
    idx = np.searchsorted(cats, values)
    ok = idx < len(cats)
    found = np.zeros(len(values), dtype=bool)
    found[ok] = cats[idx[ok]] == values[ok]
    return np.where(found, idx, -1)


def _rows_of(slots: list[int]) -> tuple[Any, np.ndarray | None]:
    """(rows, order): a slice of the slot table and the order that lines the op's per-slot
    arguments up with it, where the slots are consecutive (in any order); else (slots, None)."""
    ordered = sorted(slots)
    if ordered and ordered == list(range(ordered[0], ordered[0] + len(ordered))):
        return slice(ordered[0], ordered[-1] + 1), np.argsort(np.asarray(slots), kind="stable")
    return list(slots), None


class Program:
    """A compiled pipeline; build with ``compile_pipeline`` or ``load_program``."""

    def __init__(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.header = header
        self.arrays = arrays
        self._inputs = [(d["name"], d["kind"]) for d in header["inputs"]]
        self._classes = _classes_array(header.get("classes"))
        self._with_proba = header["task"] == "classification" and self._classes is not None
        self._proba_names = (
            [f"proba_{c}" for c in self._classes] if self._with_proba else []  # type: ignore[union-attr]
        )
        self._lookups: dict[str, dict[str, int]] = {}
        self._indexes: dict[str, Any] = {}  # pandas Index of a str op's categories
        # the slot-table rows each block op touches, as a view where they are consecutive
        self._blocks: list[Any] = [
            _rows_of(op["slots"]) if op["op"] in ("impute", "elementwise") else None
            for op in header["ops"]
        ]
        self._checked = _rows_of(sorted(set(header["columns"])))[0]  # order does not matter
        model_slots = list(header["model_slots"])
        self._model_rows: Any = (
            slice(0, len(model_slots)) if model_slots == list(range(len(model_slots)))
            else model_slots
        )  # fmt: skip
        for op in header["ops"]:
            if op["op"] in ("onehot", "ordinal") and op["match"] == "str":
                self._lookups[op["cats"]] = {
                    str(c): i for i, c in enumerate(arrays[op["cats"]].tolist())
                }
        self._warm = False
        self._pack: tuple[np.ndarray, ...] | None = None
        self._masks: tuple[int, tuple[np.ndarray, ...]] | None = None
        self._masks_known = False

    # ---- public API ----------------------------------------------------------------

    @property
    def task(self) -> str:
        return str(self.header["task"])

    @property
    def classes(self) -> np.ndarray | None:
        """The class labels the program predicts (None: a regression program)."""
        return self._classes

    @property
    def input_names(self) -> list[str]:
        """The input columns the program reads."""
        return [name for name, _ in self._inputs]

    def to_bytes(self) -> bytes:
        from mlrepro.accelerate.fileformat import dump

        return dump(self.header, self.arrays)

    def describe(self) -> dict[str, Any]:
        try:
            import numba

            version: str | None = numba.__version__
        except ImportError:  # pragma: no cover - describe works without the extra
            version = None
        model = self.header["model"]
        return {
            "runtime": "numba",
            "numba": version,
            "model": model["class"],
            "trees": int(model.get("trees", 0)),
            "nodes": int(model.get("nodes", 0)),
            "steps": list(self.header["steps"]),
            "format": FORMAT,
        }

    def _packed(self) -> tuple[np.ndarray, ...]:
        if self._pack is None:
            m, a = self.header["model"], self.arrays
            self._pack = _kernels().pack(
                a["feature"], a["left"], a["right"], a["missing_left"], a["threshold"],
                int(m["nan_mode"]), m["input"] == "float32",
            )  # fmt: skip
        return self._pack

    def _mask_tables(self) -> tuple[int, tuple[np.ndarray, ...]] | None:
        """(bits, tables) of the leaf-mask kernels, or None: this ensemble is walked."""
        if not self._masks_known:
            m = self.header["model"]
            self._masks = _kernels().pack_masks(
                self._packed(), self.arrays["roots"], self.arrays["value"], float(m["scale"]),
                self._out(0).dtype,
            )  # fmt: skip
            self._masks_known = True
        return self._masks

    def kernel(self) -> str | None:
        """Which tree kernel scores batches (``MASK_MIN_ROWS`` rows or more; fewer are always
        walked): ``leaf-mask/32`` or ``leaf-mask/64`` (at most 32 / 64 leaves under
        either child of every root), ``walk`` (larger trees), None (a linear model)."""
        if self.header["model"]["kind"] != "trees":
            return None
        masks = self._mask_tables()
        return "walk" if masks is None else f"leaf-mask/{masks[0]}"

    def warm_up(self, batch: bool = True) -> None:
        """Compile the kernels this program uses (once per process; numba caches nothing
        on disk). ``batch=False`` compiles only the single-threaded kernels that
        ``predict_record`` and frames under ``SERIAL_ROWS`` rows use (faster start)."""
        if self._warm:
            return
        model = self.header["model"]
        if model["kind"] == "trees":
            dtype = np.float32 if model["input"] == "float32" else np.float64
            x = np.zeros((1, max(1, len(self.header["model_slots"]))), dtype=dtype)
            k, a = _kernels(), self.arrays
            nan = (False, True) if self.header["nan_model"] else (False,)
            modes = (False, True) if batch else (False,)
            masks = self._mask_tables()
            if masks is not None:  # frames of MASK_MIN_ROWS rows or more
                bits, tables = masks
                for par in modes:
                    k.MASK_KERNELS[bits, par](np.ascontiguousarray(x.T), *tables, a["out_col"],
                                              self._out(1))  # fmt: skip
            # the walk: one record and small frames always; batches when there are no masks
            walks = (False,) if masks is not None else modes
            for fn in (k.KERNELS[n, par] for n in nan for par in walks):
                fn(x, a["roots"][:1], np.zeros(1, dtype=np.int64), *self._packed(), a["value"],
                   float(model["scale"]), self._out(1))  # fmt: skip
            if model["post"] == "xgb_clf":
                k.xgb_sigmoid(np.zeros(1, dtype=np.float32))
                k.xgb_softmax(np.zeros((1, 2), dtype=np.float32))
        self._warm = True

    def predict(self, frame: Any, threads: int | None = None) -> dict[str, Any] | None:
        """Outputs like ``predict_frame(pipeline, frame, task)``, or None (reference path)."""
        import pandas as pd

        if not isinstance(frame, pd.DataFrame) or len(frame) == 0:
            return None
        if frame.columns.has_duplicates:
            return None
        try:
            columns: list[np.ndarray] = []
            for name, kind in self._inputs:
                if name not in frame.columns:
                    return None
                series = frame[name]
                columns.append(_str_column(series) if kind == "str" else _num_column(series))
            n = len(frame)
            if n <= BATCH_ROWS:
                return self._run(columns, n, threads, serial=n < SERIAL_ROWS)
            parts = self._slices(columns, n, threads)
            return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        except _Fallback:
            return None

    def _slices(self, columns: list[Any], n: int, threads: int | None) -> list[dict[str, Any]]:
        """Outputs of the slices of BATCH_ROWS rows (bounded temporaries: peak memory flat in
        n; cache-sized slot tables). Tree programs score the slices on a pool of threads, one
        single-threaded kernel each (the kernels and numpy's loops release the GIL), so the
        feature steps of one slice overlap the trees of another. (Leaf-mask programs only:
        the walk's parallel kernel splits a slice into chunks that stay in cache.)"""
        starts = range(0, n, BATCH_ROWS)
        workers = 1
        if self.header["model"]["kind"] == "trees" and self._mask_tables() is not None:
            import numba  # the shared tables are built (above) before the threads start

            limit = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
            workers = max(1, min(int(threads or numba.get_num_threads()), limit, len(starts)))

        def one(lo: int) -> dict[str, Any]:
            size = min(BATCH_ROWS, n - lo)
            return self._run([c[lo : lo + size] for c in columns], size, threads, workers > 1)

        if workers == 1:
            return [one(lo) for lo in starts]
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(workers, thread_name_prefix="mlrepro-predict")
        try:
            return list(pool.map(one, starts))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def predict_record(self, record: Mapping[str, Any]) -> dict[str, Any] | None:
        """One row's outputs (arrays of length 1), or None; no pandas, single-threaded."""
        try:
            numbers: list[float] = []
            texts: list[Any] = []
            for name, kind in self._inputs:
                if name not in record:
                    return None
                value = record[name]
                if kind == "str":
                    if not isinstance(value, str):
                        raise _Fallback
                    texts.append(value)
                    numbers.append(0.0)
                else:
                    texts.append(None)
                    numbers.append(_num_value(value))
            vector = np.array(numbers, dtype=np.float64)
            columns = [
                vector[j : j + 1] if texts[j] is None else texts[j] for j in range(len(texts))
            ]
            return self._run(columns, 1, None, serial=True, record=True)
        except _Fallback:
            return None

    # ---- evaluation ------------------------------------------------------------------

    def _codes(self, op: dict[str, Any], column: Any, record: bool) -> np.ndarray:
        cats = self.arrays[op["cats"]]
        if op["match"] == "str":
            if record:
                return np.array([self._lookups[op["cats"]].get(column, -1)], dtype=np.intp)
            import pandas as pd

            index = self._indexes.get(op["cats"])
            if index is None:  # object dtype on both sides: no conversion to Arrow strings
                index = self._indexes[op["cats"]] = pd.Index(cats.astype(object), dtype=object)
            return index.get_indexer(pd.Index(column, dtype=object, copy=False))
        return _num_codes(column, cats)

    def _run(
        self, columns: list[Any], n: int, threads: int | None, serial: bool, record: bool = False
    ) -> dict[str, Any]:
        h, a = self.header, self.arrays
        S = np.empty((int(h["slots"]), n), dtype=np.float64)
        for op, where in zip(h["ops"], self._blocks, strict=True):
            kind = op["op"]
            if kind == "load":
                S[op["slot"]] = columns[op["input"]]
            elif kind == "impute":
                rows, order = where
                block = S[rows]
                if np.isinf(block).any():
                    raise _Fallback
                values = a[op["values"]] if order is None else a[op["values"]][order]
                S[rows] = np.where(np.isnan(block), values[:, None], block)
            elif kind == "elementwise":
                rows, order = where
                block = S[rows]  # a view where the slots are consecutive: updated in place
                if np.isinf(block).any():
                    raise _Fallback
                # an overflow to inf is caught below (the frame goes to the reference, which
                # rejects it): no RuntimeWarning on the way
                with np.errstate(over="ignore", invalid="ignore"):
                    for step in op["steps"]:
                        if step[0] == "clip":
                            np.clip(block, step[1], step[2], out=block)
                            continue
                        arg = (a[step[1]] if order is None else a[step[1]][order])[:, None]
                        if step[0] == "sub":
                            block -= arg
                        elif step[0] == "add":
                            block += arg
                        elif step[0] == "mul":
                            block *= arg
                        else:
                            block /= arg
                if order is None:
                    S[rows] = block
            elif kind == "onehot":
                codes = self._codes(op, columns[op["input"]], record)
                if op["unknown"] == "error" and (codes < 0).any():
                    raise _Fallback
                for j, slot in enumerate(op["slots"]):
                    if slot >= 0:
                        S[slot] = codes == j
            else:  # ordinal
                codes = self._codes(op, columns[op["input"]], record)
                unknown = codes < 0
                if unknown.any():
                    if op["unknown"] is None:
                        raise _Fallback
                    S[op["slot"]] = np.where(unknown, float(op["unknown"]), codes)
                else:
                    S[op["slot"]] = codes
        final = S[self._checked]
        if np.isinf(final).any():
            raise _Fallback
        if not h["nan_select"] and np.isnan(final).any():
            raise _Fallback
        X = S[self._model_rows]
        if not h["nan_model"] and np.isnan(X).any():
            raise _Fallback
        return self._model(X.T, threads, serial)

    def _out(self, n: int) -> np.ndarray:
        m, a = self.header["model"], self.arrays
        return np.zeros(
            (n, a["value"].shape[1] if m["width"] == "classes" else m["k"]),
            dtype=np.float32 if m.get("acc") == "float32" else np.float64,
        )

    def _trees(self, X: np.ndarray, threads: int | None, serial: bool) -> np.ndarray:
        m, a = self.header["model"], self.arrays
        # a few rows are walked (the masks evaluate every split: they pay off on blocks of
        # rows); the leaf-mask kernels read features-major (X.T is the slot table: no copy)
        masks = self._mask_tables() if X.shape[0] >= MASK_MIN_ROWS else None
        if masks is not None:
            X = X.T
        if m["input"] == "float32":
            with np.errstate(over="ignore"):
                x = np.ascontiguousarray(X, dtype=np.float32)
            if np.isinf(x).any():  # too large for float32: sklearn raises
                raise _Fallback
        else:
            x = np.ascontiguousarray(X, dtype=np.float64)
        if m.get("zero_tiny"):  # LightGBM's C API reads |x| <= kZeroThreshold as 0
            x = np.ascontiguousarray(np.where(np.abs(x) <= LGBM_ZERO, 0.0, x))
        out = self._out(x.shape[1] if masks is not None else x.shape[0])
        if m.get("init") is not None:
            out += a[m["init"]][None, :]
        k = _kernels()
        if masks is not None:
            bits, tables = masks
            kernels = {par: k.MASK_KERNELS[bits, par] for par in (False, True)}
            args: tuple[Any, ...] = (x, *tables, a["out_col"], out)
        else:
            nan = bool(self.header["nan_model"]) and bool(np.isnan(x).any())
            kernels = {par: k.KERNELS[nan, par] for par in (False, True)}
            node_table = self._packed()
            args = (x, a["roots"], a["out_col"], *node_table, a["value"], float(m["scale"]), out)
        if serial:
            kernels[False](*args)
        else:
            import numba

            before = numba.get_num_threads()
            if threads is not None:
                numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
            try:
                kernels[True](*args)
            finally:
                numba.set_num_threads(before)
        return out

    def _model(self, X: np.ndarray, threads: int | None, serial: bool) -> dict[str, Any]:
        m, a = self.header["model"], self.arrays
        post = m["post"]
        proba: np.ndarray | None = None
        if m["kind"] == "linear":
            x = np.asfortranarray(X)
            coef = a["coef"]
            raw = x @ coef + a["intercept"] if coef.ndim == 1 else x @ coef.T + a["intercept"]
            if post == "linear":
                return {"prediction": raw}
            scores = np.reshape(raw, (-1,)) if raw.ndim > 1 and raw.shape[1] == 1 else raw
            if scores.ndim == 1:
                pred = self._take((scores > 0).astype(np.intp))
                prob = _expit(scores)
                proba = np.stack([1 - prob, prob], axis=1)
            else:
                pred = self._take(np.argmax(scores, axis=1))
                proba = _softmax(scores)
            return self._outputs(pred, proba)
        out = self._trees(X, threads, serial)
        if post == "forest_reg":
            y = out[:, 0].copy()
            y /= int(m["trees"])
            return {"prediction": y}
        if post == "raw_reg":
            return {"prediction": out[:, 0].copy()}
        if post == "hgb_reg":
            y = out.ravel()
            return {"prediction": np.exp(y) if m["link"] == "log" else y}
        if post in ("lgbm_reg", "lgbm_clf", "xgb_reg", "xgb_clf"):
            return self._booster(out)
        if post == "forest_clf":
            out /= int(m["trees"])
            return self._outputs(self._take(np.argmax(out, axis=1)), out)
        if post == "tree_clf":
            n_classes = 0 if self._classes is None else len(self._classes)
            proba = out[:, :n_classes]
            normalizer = proba.sum(axis=1)[:, np.newaxis]
            normalizer[normalizer == 0.0] = 1.0
            pred = self._take(np.argmax(out, axis=1))
            proba = proba / normalizer
            return self._outputs(pred, proba)
        # gb_clf / hgb_clf: decide on the raw score, probabilities through the loss link
        if out.shape[1] == 1:
            raw = out.ravel()
            decided = (raw >= 0) if post == "gb_clf" else (raw > 0)
            pred = self._take(decided.astype(np.intp))
            proba = np.empty((raw.shape[0], 2), dtype=raw.dtype)
            proba[:, 1] = _expit(raw)
            proba[:, 0] = 1 - proba[:, 1]
        else:
            pred = self._take(np.argmax(out, axis=1))
            proba = _softmax(out)
        return self._outputs(pred, proba)

    def _booster(self, out: np.ndarray) -> dict[str, Any]:
        """LightGBM's (float64) and XGBoost's (float32) predict after the summed trees."""
        m = self.header["model"]
        post = m["post"]
        if post == "lgbm_reg":
            y = out[:, 0].copy()
            return {"prediction": np.exp(y) if m["link"] == "log" else y}
        if post == "xgb_reg":
            return {"prediction": out[:, 0].copy()}
        if post == "lgbm_clf":
            if out.shape[1] == 1:  # 1.0 / (1.0 + exp(-sigmoid * raw)), then [1 - p, p]
                p = 1.0 / (1.0 + np.exp(-float(m["sigmoid"]) * out[:, 0]))
                proba = np.vstack((1.0 - p, p)).transpose()
            else:
                proba = _softmax(out)
            return self._outputs(self._take(np.argmax(proba, axis=1)), proba)
        k = _kernels()
        objective = m["objective"]
        if objective == "binary:logistic":
            p = k.xgb_sigmoid(np.ascontiguousarray(out[:, 0]))
            proba = np.vstack((1.0 - p, p)).transpose()
            return self._outputs(self._take((p > 0.5).astype(np.intp)), proba)
        if objective == "multi:softprob":
            proba = k.xgb_softmax(np.ascontiguousarray(out))
            return self._outputs(self._take(np.argmax(proba, axis=1)), proba)
        from scipy.special import softmax  # multi:softmax: XGBClassifier.predict_proba's

        return self._outputs(self._take(np.argmax(out, axis=1)), softmax(out, axis=1))

    def _take(self, idx: np.ndarray) -> np.ndarray:
        assert self._classes is not None
        return self._classes.take(idx, axis=0)

    def _outputs(self, pred: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
        result: dict[str, Any] = {"prediction": pred}
        if self._with_proba:
            for j, name in enumerate(self._proba_names):
                result[name] = proba[:, j]
        return result


def _classes_array(spec: Any) -> np.ndarray | None:
    if spec is None:
        return None
    dtype = spec["dtype"]
    if dtype == "object":
        arr = np.empty(len(spec["values"]), dtype=object)
        arr[:] = spec["values"]
        return arr
    return np.array(spec["values"], dtype=np.dtype(dtype))
