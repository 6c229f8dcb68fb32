"""compile_pipeline: a fitted ``Pipeline([features, select, model])`` -> ``Program``.

Only exact types are compiled (a subclass may override ``transform``/``predict``); anything
else raises ``Refused`` naming the step or model that cannot be represented. The column
bookkeeping mirrors ``FeatureSteps._apply``/``_splice``: each step replaces its columns
with its outputs at the position of its first column.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlrepro.accelerate.refused import Refused


def _qual(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__name__}"


_FOREST_REG = {
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
}
_FOREST_CLF = {
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
}
_TREE_REG = {
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeRegressor",
}
_TREE_CLF = {
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
}
_LINEAR = {
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.linear_model._coordinate_descent.Lasso",
    "sklearn.linear_model._coordinate_descent.ElasticNet",
}
_LOGISTIC = "sklearn.linear_model._logistic.LogisticRegression"
_GB_REG = "sklearn.ensemble._gb.GradientBoostingRegressor"
_GB_CLF = "sklearn.ensemble._gb.GradientBoostingClassifier"
_HGB_REG = (
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor"
)
_HGB_CLF = (
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier"
)


class _Builder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.ops: list[dict[str, Any]] = []
        self.slots = 0
        self.steps: list[str] = []

    def array(self, prefix: str, value: np.ndarray) -> str:
        name = f"{prefix}_{len(self.arrays)}"
        self.arrays[name] = value
        return name

    def slot(self) -> int:
        self.slots += 1
        return self.slots - 1


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _float_params(est: Any, what: str, *names: str) -> list[np.ndarray]:
    out = []
    for n in names:
        v = np.asarray(getattr(est, n), dtype=np.float64)
        if v.ndim != 1:
            raise Refused(f"{what}: {n} is not a vector")
        out.append(v)
    return out


def _numeric_step(b: _Builder, name: str, est: Any, slots: list[int]) -> str:
    qual = _qual(est)
    what = f"feature step '{name}' ({type(est).__name__})"
    n = len(slots)
    steps: list[list[Any]] = []
    if qual == "sklearn.impute._base.SimpleImputer":
        if getattr(est, "add_indicator", False):
            raise Refused(f"{what} with add_indicator")
        if not _is_nan(est.missing_values):
            raise Refused(f"{what} with missing_values other than NaN")
        stats = np.asarray(est.statistics_)
        if stats.dtype.kind == "O" and all(
            type(v) in (int, float) or isinstance(v, (np.integer, np.floating)) for v in stats
        ):
            stats = stats.astype(np.float64)
        if stats.dtype.kind not in "fiu":
            raise Refused(f"{what} with non-numeric statistics")
        stats = stats.astype(np.float64)
        if stats.shape != (n,) or np.isnan(stats).any() or not np.isfinite(stats).all():
            raise Refused(f"{what} with an empty (all-missing) column")
        b.ops.append({"op": "impute", "slots": slots, "values": b.array("impute", stats)})
        return "impute"
    if qual == "sklearn.preprocessing._data.StandardScaler":
        if est.with_mean:
            steps.append(["sub", b.array("mean", _float_params(est, what, "mean_")[0])])
        if est.with_std and est.scale_ is not None:
            steps.append(["div", b.array("scale", _float_params(est, what, "scale_")[0])])
        kind = "standard_scaler"
    elif qual == "sklearn.preprocessing._data.MinMaxScaler":
        scale, mn = _float_params(est, what, "scale_", "min_")
        steps += [["mul", b.array("scale", scale)], ["add", b.array("min", mn)]]
        if est.clip:
            lo, hi = est.feature_range
            steps.append(["clip", float(lo), float(hi)])
        kind = "minmax_scaler"
    elif qual == "sklearn.preprocessing._data.MaxAbsScaler":
        steps.append(["div", b.array("scale", _float_params(est, what, "scale_")[0])])
        if getattr(est, "clip", False):
            steps.append(["clip", -1.0, 1.0])
        kind = "maxabs_scaler"
    elif qual == "sklearn.preprocessing._data.RobustScaler":
        if est.with_centering:
            steps.append(["sub", b.array("center", _float_params(est, what, "center_")[0])])
        if est.with_scaling:
            steps.append(["div", b.array("scale", _float_params(est, what, "scale_")[0])])
        kind = "robust_scaler"
    elif qual == "sklearn.preprocessing._function_transformer.FunctionTransformer":
        if est.func is not None or est.validate:
            raise Refused(f"{what} with a function")
        return "identity"
    else:
        raise Refused(what)
    for st in steps:
        if st[0] != "clip" and b.arrays[st[1]].shape != (n,):
            raise Refused(f"{what}: fitted on {b.arrays[st[1]].shape[0]} columns, not {n}")
    if steps:
        b.ops.append({"op": "elementwise", "slots": slots, "steps": steps})
    return kind


def _categories(what: str, cats: Any) -> tuple[str, np.ndarray, int]:
    """(match kind, comparable categories, their count with a trailing missing category).

    A missing category (None/NaN, sorted last by sklearn) is kept as an output column that
    stays 0: missing inputs always take the reference path at run time.
    """
    cats = np.asarray(cats)
    n = len(cats)
    if cats.dtype.kind in "iuf":
        values = cats.astype(np.float64)
        values = values[~np.isnan(values)]
        if (np.diff(values) <= 0).any():
            raise Refused(f"{what}: unsorted numeric categories")
        if cats.dtype.kind in "iu" and np.abs(cats).max(initial=0) > 2**53:
            raise Refused(f"{what}: integer categories beyond 2**53")
        if len(values) < n - 1:
            raise Refused(f"{what}: several NaN categories")
        return "num", values, n
    items = list(cats.tolist())
    if items and (items[-1] is None or _is_nan(items[-1])):
        items = items[:-1]
    if not all(type(c) is str for c in items):
        raise Refused(f"{what}: categories that are not all text")
    return "str", (np.array(items, dtype=str) if items else np.array([], dtype="<U1")), n


def _encoder(
    b: _Builder, name: str, est: Any, inputs: list[int], kinds: dict[int, str]
) -> tuple[str, list[int]]:
    qual = _qual(est)
    what = f"feature step '{name}' ({type(est).__name__})"
    onehot = qual == "sklearn.preprocessing._encoders.OneHotEncoder"
    if not onehot and qual != "sklearn.preprocessing._encoders.OrdinalEncoder":
        raise Refused(what)
    if getattr(est, "_infrequent_enabled", False):
        raise Refused(f"{what} with infrequent categories")
    if np.dtype(est.dtype) != np.float64:
        raise Refused(f"{what} with dtype {np.dtype(est.dtype)}")
    outs: list[int] = []
    for j, i in enumerate(inputs):
        match, cats, n_cats = _categories(what, est.categories_[j])
        if kinds.setdefault(i, match) != match:
            raise Refused(f"{what}: input used both as text and as numbers")
        name_c = b.array("cats", cats)
        if onehot:
            drop = None if est.drop_idx_ is None else est.drop_idx_[j]
            slots = [-1 if drop is not None and c == int(drop) else b.slot() for c in range(n_cats)]
            handling = "error" if est.handle_unknown == "error" else "zeros"
            b.ops.append(
                {
                    "op": "onehot",
                    "input": i,
                    "match": match,
                    "cats": name_c,
                    "slots": slots,
                    "unknown": handling,
                }
            )
            outs += [s for s in slots if s >= 0]
        else:
            unknown: float | None = None
            if est.handle_unknown == "use_encoded_value":
                if _is_nan(est.unknown_value):
                    raise Refused(f"{what} with unknown_value=NaN")
                unknown = float(est.unknown_value)
            s = b.slot()
            b.ops.append(
                {
                    "op": "ordinal",
                    "input": i,
                    "match": match,
                    "cats": name_c,
                    "slot": s,
                    "unknown": unknown,
                }
            )
            outs.append(s)
    return ("onehot" if onehot else "ordinal"), outs


def _features(b: _Builder, features: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(input specs, {feature output name: slot} in output order)."""
    if _qual(features) != "mlrepro.transformers.FeatureSteps":
        raise Refused(f"feature stage {type(features).__name__}")
    names_in = [str(c) for c in features.feature_names_in_]
    kinds: dict[int, str] = {}
    # virtual frame: (name, ("raw", input index) | ("slot", slot))
    frame: list[tuple[str, tuple[str, int]]] = [(n, ("raw", i)) for i, n in enumerate(names_in)]

    def as_slot(ref: tuple[str, int]) -> int:
        if ref[0] == "slot":
            return ref[1]
        if kinds.setdefault(ref[1], "num") != "num":
            raise Refused(f"input column '{names_in[ref[1]]}' is used both as text and as numbers")
        s = b.slot()
        b.ops.append({"op": "load", "input": ref[1], "slot": s})
        return s

    for name, est, cols, out_names in features.fitted_steps_:
        cols = [str(c) for c in cols]
        if not cols:
            continue
        where = {n: k for k, (n, _) in enumerate(frame)}
        if any(c not in where for c in cols):
            raise Refused(f"feature step '{name}': columns missing from the frame")
        refs = [frame[where[c]][1] for c in cols]
        qual = _qual(est)
        if qual.endswith(("._encoders.OneHotEncoder", "._encoders.OrdinalEncoder")):
            if any(r[0] != "raw" for r in refs):
                raise Refused(f"feature step '{name}' ({type(est).__name__}) on computed columns")
            kind, outs = _encoder(b, name, est, [r[1] for r in refs], kinds)
        else:
            slots = [as_slot(r) for r in refs]
            kind = _numeric_step(b, name, est, slots)
            outs = slots
        if len(outs) != len(out_names):
            raise Refused(f"feature step '{name}' ({type(est).__name__}) output width")
        b.steps.append(kind)
        new = list(zip([str(n) for n in out_names], [("slot", s) for s in outs], strict=True))
        colset = set(cols)
        spliced: list[tuple[str, tuple[str, int]]] = []
        placed = False
        for entry in frame:
            if entry[0] in colset:
                if not placed:
                    spliced += new
                    placed = True
            else:
                spliced.append(entry)
        if len({n for n, _ in spliced}) != len(spliced):
            raise Refused(f"feature step '{name}' produces duplicate column names")
        frame = spliced
    if [n for n, _ in frame] != [str(c) for c in features.feature_names_out_]:
        raise Refused("feature output columns do not match the fitted feature names")
    final = {n: as_slot(ref) for n, ref in frame}
    inputs = [
        {"name": n, "kind": "str" if kinds.get(i) == "str" else "num"}
        for i, n in enumerate(names_in)
    ]
    return inputs, final


def _probe_nan(est: Any, names: list[str]) -> bool:
    import pandas as pd

    row = pd.DataFrame([[np.nan] * len(names)], columns=names)
    try:
        est.predict(row) if hasattr(est, "predict") else est.transform(row)
    except Exception:
        return False
    return True


def _selection(select: Any, feature_names: list[str]) -> tuple[list[str], bool]:
    import pandas as pd

    qual = _qual(select)
    if qual == "mlrepro.transformers.KeepColumns":
        chosen = [str(c) for c in select.get_feature_names_out()]
        return chosen, True
    from sklearn.feature_selection._base import SelectorMixin

    if not qual.startswith("sklearn.feature_selection.") or type(select).transform is not (
        SelectorMixin.transform
    ):
        raise Refused(f"selection step {type(select).__name__}")
    names_in = [str(c) for c in getattr(select, "feature_names_in_", [])]
    if names_in != feature_names:
        raise Refused("selection step was fitted on other columns")
    support = np.asarray(select.get_support(), dtype=bool)
    chosen = [n for n, keep in zip(names_in, support, strict=True) if keep]
    try:
        select.transform(pd.DataFrame([[np.nan] * len(names_in)], columns=names_in))
        nan_ok = True
    except Exception:
        nan_ok = False
    return chosen, nan_ok


def _classes(model: Any, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    classes = np.asarray(model.classes_)
    if spec is not None and spec.get("objective") == "multi:softmax":
        # XGBClassifier.predict returns the class index as int32 under multi:softmax
        if not np.array_equal(classes, np.arange(len(classes))):
            raise Refused(f"{type(model).__name__} with classes other than 0..n-1")
        return {"dtype": "int32", "values": classes.tolist()}
    if classes.ndim != 1:
        raise Refused(f"{type(model).__name__} with multiple outputs")
    if classes.dtype.kind == "O":
        if not all(type(c) is str for c in classes):
            raise Refused(f"{type(model).__name__} with class labels that are not text")
        return {"dtype": "object", "values": [str(c) for c in classes]}
    if classes.dtype.kind not in "iubU" and classes.dtype != np.float64:
        raise Refused(f"{type(model).__name__} with class labels of dtype {classes.dtype}")
    return {
        "dtype": classes.dtype.str if classes.dtype.kind == "U" else classes.dtype.name,
        "values": classes.tolist(),
    }


class _Trees:
    def __init__(self) -> None:
        self.feature: list[np.ndarray] = []
        self.threshold: list[np.ndarray] = []
        self.left: list[np.ndarray] = []
        self.right: list[np.ndarray] = []
        self.missing: list[np.ndarray] = []
        self.value: list[np.ndarray] = []
        self.roots: list[int] = []
        self.out_col: list[int] = []
        self.nodes = 0

    def add(
        self,
        feature: Any,
        threshold: Any,
        left: Any,
        right: Any,
        missing: Any,
        value: np.ndarray,
        col: int,
    ) -> None:
        """One tree in sklearn's depth-first order (a left child follows its parent)."""
        left = np.asarray(left, dtype=np.int64)
        right = np.asarray(right, dtype=np.int64)
        n = len(left)
        order = np.arange(n)
        new_left = left
        off = self.nodes
        leaf = new_left < 0
        self.feature.append(np.where(leaf, 0, np.asarray(feature, dtype=np.int64)[order]))
        self.threshold.append(np.asarray(threshold, dtype=np.float64)[order])
        self.left.append(np.where(leaf, -1, new_left + off))
        self.right.append(np.where(leaf, -1, right + off))
        self.missing.append(np.asarray(missing, dtype=np.uint8)[order])
        self.value.append(np.asarray(value, dtype=np.float64)[order])
        self.roots.append(off)
        self.out_col.append(col)
        self.nodes += n

    def add_sklearn(self, tree: Any, value: np.ndarray, col: int) -> None:
        t = tree.tree_
        if t.n_outputs != 1:
            raise Refused("trees with multiple outputs")
        missing = getattr(t, "missing_go_to_left", np.zeros(t.node_count, dtype=np.uint8))
        self.add(t.feature, t.threshold, t.children_left, t.children_right, missing, value, col)

    def store(self, b: _Builder) -> None:
        b.arrays.update(
            feature=np.concatenate(self.feature),
            threshold=np.concatenate(self.threshold),
            left=np.concatenate(self.left),
            right=np.concatenate(self.right),
            missing_left=np.concatenate(self.missing),
            value=np.ascontiguousarray(np.concatenate(self.value)),
            roots=np.asarray(self.roots, dtype=np.int64),
            out_col=np.asarray(self.out_col, dtype=np.int64),
        )


def _boosters() -> Any:
    from mlrepro.accelerate import boosters  # LightGBM / XGBoost, read through their dumps

    return boosters


def _normalised(value: np.ndarray) -> np.ndarray:
    """Per-node class probabilities as older sklearn's predict_proba normalised them."""
    proba = np.array(value[:, 0, :], copy=True)
    normalizer = proba.sum(axis=1)[:, np.newaxis]
    normalizer[normalizer == 0.0] = 1.0
    proba /= normalizer
    return proba


def _leaf_proba(est: Any, names: list[str]) -> Any:
    """How this sklearn's ``DecisionTreeClassifier.predict_proba`` maps a leaf's value.

    Probed on one row: the stored value itself (sklearn >= 1.4 stores fractions) or the
    value normalised by its sum (older versions); anything else is refused.
    """
    probe = np.zeros((1, len(names)), dtype=np.float32)  # the forest's trees have no names
    leaf = int(est.apply(probe)[0])
    got = np.asarray(est.predict_proba(probe))[0]
    n = len(got)
    raw = np.array(est.tree_.value[:, 0, :n])
    if np.array_equal(raw[leaf], got):
        return lambda v: np.array(v[:, 0, :n])
    if np.array_equal(_normalised(est.tree_.value)[leaf, :n], got):
        return lambda v: _normalised(v)[:, :n]
    raise Refused(f"{type(est).__name__}: unexpected predict_proba semantics")


def _model(b: _Builder, model: Any, names: list[str]) -> dict[str, Any]:  # noqa: C901
    qual = _qual(model)
    cls = type(model).__name__
    k = len(names)
    if getattr(model, "n_features_in_", k) != k:
        raise Refused(f"{cls} was fitted on {model.n_features_in_} features, not {k}")
    fitted_names = getattr(model, "feature_names_in_", None)
    if fitted_names is not None and [str(c) for c in fitted_names] != names:
        raise Refused(f"{cls} was fitted on other feature names")
    trees = _Trees()
    base: dict[str, Any] = {
        "class": cls,
        "kind": "trees",
        "input": "float32",
        "nan_mode": 1,
        "scale": 1.0,
        "width": "k",
        "k": 1,
        "init": None,
    }
    if qual in _LINEAR:
        coef = np.asarray(model.coef_, dtype=np.float64)
        intercept = np.asarray(model.intercept_, dtype=np.float64)
        if coef.shape != (k,) or intercept.ndim != 0:
            raise Refused(f"{cls} with multiple targets")
        b.arrays.update(coef=coef, intercept=intercept)
        return {"class": cls, "kind": "linear", "post": "linear"}
    if qual == _LOGISTIC:
        coef = np.asarray(model.coef_, dtype=np.float64)
        intercept = np.asarray(model.intercept_, dtype=np.float64)
        if coef.ndim != 2 or coef.shape[1] != k or intercept.shape != (coef.shape[0],):
            raise Refused(f"{cls} coefficient shapes")
        b.arrays.update(coef=coef, intercept=intercept)
        return {"class": cls, "kind": "linear", "post": "logistic"}
    if qual in _FOREST_REG or qual in _TREE_REG:
        ests = model.estimators_ if qual in _FOREST_REG else [model]
        for e in ests:
            trees.add_sklearn(e, e.tree_.value[:, 0, :1], 0)
        post = "forest_reg" if qual in _FOREST_REG else "raw_reg"
        base.update(post=post)
    elif qual in _FOREST_CLF or qual in _TREE_CLF:
        if getattr(model, "n_outputs_", 1) != 1:
            raise Refused(f"{cls} with multiple outputs")
        # a single tree is a forest of one: out = 0 + proba, then / 1 (both exact)
        ests = model.estimators_ if qual in _FOREST_CLF else [model]
        leaf_proba = _leaf_proba(ests[0], names)
        for e in ests:
            trees.add_sklearn(e, leaf_proba(e.tree_.value), 0)
        base.update(post="forest_clf", width="classes")
    elif qual in (_GB_REG, _GB_CLF):
        init = model.init_
        if not (isinstance(init, str) and init == "zero") and _qual(init) not in (
            "sklearn.dummy.DummyRegressor",
            "sklearn.dummy.DummyClassifier",
        ):
            raise Refused(f"{cls} with init estimator {type(init).__name__}")
        loss = type(model._loss).__name__
        if qual == _GB_CLF and loss not in ("HalfBinomialLoss", "HalfMultinomialLoss"):
            raise Refused(f"{cls} with loss {model.loss!r}")
        probe = np.zeros((1, k), dtype=np.float32)  # validated by the first (unnamed) tree
        raw_init = np.asarray(model._raw_predict_init(probe), dtype=np.float64)
        stages = model.estimators_
        K = stages.shape[1]
        for i in range(stages.shape[0]):
            for j in range(K):
                e = stages[i, j]
                trees.add_sklearn(e, e.tree_.value[:, 0, :1], j)
        base.update(
            post="gb_clf" if qual == _GB_CLF else "raw_reg",
            nan_mode=2,
            k=K,
            scale=float(model.learning_rate),
            init=b.array("init", raw_init[0].copy()),
        )
    elif qual in (_HGB_REG, _HGB_CLF):
        if (
            getattr(model, "_preprocessor", None) is not None
            or getattr(model, "is_categorical_", None) is not None
        ):
            raise Refused(f"{cls} with categorical features")
        link = type(model._loss.link).__name__
        if qual == _HGB_REG and link not in ("IdentityLink", "LogLink"):
            raise Refused(f"{cls} with loss {model.loss!r}")
        if qual == _HGB_CLF and type(model._loss).__name__ not in (
            "HalfBinomialLoss",
            "HalfMultinomialLoss",
        ):
            raise Refused(f"{cls} with loss {model.loss!r}")
        K = int(model.n_trees_per_iteration_)
        for stage in model._predictors:
            for j, pred in enumerate(stage):
                nd = pred.nodes
                if nd["is_categorical"].any():
                    raise Refused(f"{cls} with categorical splits")
                leaf = nd["is_leaf"].astype(bool)
                trees.add(
                    nd["feature_idx"],
                    nd["num_threshold"],
                    np.where(leaf, -1, nd["left"].astype(np.int64)),
                    np.where(leaf, -1, nd["right"].astype(np.int64)),
                    nd["missing_go_to_left"],
                    nd["value"].reshape(-1, 1),
                    j,
                )
        baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
        post = "hgb_clf" if qual == _HGB_CLF else "hgb_reg"
        base.update(
            post=post,
            input="float64",
            k=K,
            init=b.array("init", baseline),
            link="log" if link == "LogLink" else "identity",
        )
    elif qual in _boosters().QUALS:
        spec = _boosters().booster_model(b, trees, model, qual, k)
        init = spec.pop("init_values", None)
        base.update(spec)
        if init is not None:
            base["init"] = b.array("init", np.asarray(init, dtype=np.float64))
    else:
        raise Refused(cls)
    trees.store(b)
    base.update(trees=len(trees.roots), nodes=trees.nodes)
    return base


def compile_pipeline(pipeline: Any, task: str) -> Any:
    """A ``Program`` computing what ``predict_frame(pipeline, X, task)`` computes."""
    from mlrepro.accelerate.fileformat import FORMAT, validate
    from mlrepro.accelerate.program import Program

    if task not in ("regression", "classification"):
        raise Refused(f"task {task!r}")
    steps = getattr(pipeline, "steps", None)
    if _qual(pipeline) != "sklearn.pipeline.Pipeline" or not steps or len(steps) != 3:
        raise Refused(f"{type(pipeline).__name__} is not a features/select/model pipeline")
    (_, features), (_, select), (_, model) = steps
    b = _Builder()
    inputs, final = _features(b, features)
    feature_names = list(final)
    chosen, nan_select = _selection(select, feature_names)
    if any(c not in final for c in chosen) or not chosen:
        raise Refused("selection names columns the features do not produce")
    model_spec = _model(b, model, chosen)
    if model_spec["kind"] == "trees":
        b.steps.append("trees")
    else:
        b.steps.append("linear")
    is_clf = model_spec["post"] in (
        "forest_clf", "tree_clf", "gb_clf", "hgb_clf", "logistic", "lgbm_clf", "xgb_clf"
    )  # fmt: skip
    header: dict[str, Any] = {
        "format": FORMAT,
        "task": task,
        "inputs": inputs,
        "slots": max(1, b.slots),
        "ops": b.ops,
        "columns": [final[n] for n in feature_names],
        "model_slots": [final[n] for n in chosen],
        "nan_select": nan_select,
        "nan_model": _probe_nan(model, chosen),
        "model": model_spec,
        "classes": _classes(model, model_spec) if is_clf else None,
        "steps": b.steps,
        "feature_names": feature_names,
    }
    if task == "classification" and not is_clf:
        raise Refused(f"{type(model).__name__} for a classification task")
    if task == "regression" and is_clf:
        header["classes"] = None
        raise Refused(f"{type(model).__name__} for a regression task")
    header = _jsonable(header)
    validate(header, b.arrays)
    return Program(header, b.arrays)


def _jsonable(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj, allow_nan=False, default=_plain))


def _plain(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)
