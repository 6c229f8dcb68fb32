"""LightGBM and XGBoost models (plugin estimators) as tree tables for the compiler.

Neither library is imported here: the fitted estimator is read through its own dump
(LightGBM ``booster_.dump_model()``, XGBoost ``get_booster().save_raw("json")``) and mapped
onto the node arrays ``compiler._Trees`` stores; ``program`` then applies what the library's
predict applies after the trees. What differs from scikit-learn's trees:

* LightGBM compares ``x <= threshold`` in float64 (thresholds are doubles, dumped with 17
  digits). Its C API drops inputs with ``|x| <= kZeroThreshold`` (1e-35f) as zeros before
  the trees (``zero_tiny``). A NaN takes the default child when the split's
  ``missing_type`` is ``NaN``, and is read as 0.0 otherwise (``None``: the child 0.0 goes
  to; ``Zero``: the default child, accepted only where that is where 0.0 goes anyway).
  The raw score is the sum of the trees (the initial score is folded into the first
  tree), summed in float64 in tree order; then sigmoid, softmax, exp or identity.
* XGBoost reads every feature as float32 and goes left on ``x < threshold`` (float32),
  missing values (NaN) to the default child. ``x < t`` equals ``x <= nextafter(t, -inf)``
  for every float32 ``x``, so the stored threshold is that float32 neighbour. Margins are
  summed in float32 starting from the base score (``acc: float32``); the sigmoid and
  softmax are XGBoost's float32 formulas (``kernels.xgb_sigmoid``/``xgb_softmax``).

Anything else (categorical splits, linear trees, DART, random-forest averaging, gblinear,
other objectives, early stopping that truncates the trees at predict time, a ``missing``
value other than NaN) is refused.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

LGBM_CLF = "lightgbm.sklearn.LGBMClassifier"
LGBM_REG = "lightgbm.sklearn.LGBMRegressor"
XGB_CLF = "xgboost.sklearn.XGBClassifier"
XGB_REG = "xgboost.sklearn.XGBRegressor"
QUALS = {LGBM_CLF, LGBM_REG, XGB_CLF, XGB_REG}

K_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float literal in a double)
_LGBM_IDENTITY = {"regression", "regression_l1", "huber", "fair", "quantile", "mape"}
_LGBM_LOG = {"poisson", "gamma", "tweedie"}
_XGB_OBJECTIVES = {"reg:squarederror", "binary:logistic", "multi:softprob", "multi:softmax"}


def _refused(reason: str) -> Exception:
    from mlrepro.accelerate.refused import Refused

    return Refused(reason)


def _preorder(n: int, root: int, left: Any, right: Any) -> list[int]:
    """Node ids reachable from ``root`` in depth-first order (each left child follows its
    parent), so that every child's new index is greater than its parent's."""
    order: list[int] = []
    seen = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node in seen or not 0 <= node < n:
            raise _refused("a booster tree that is not a tree")
        seen.add(node)
        order.append(node)
        if left[node] >= 0:
            stack.append(int(right[node]))
            stack.append(int(left[node]))
    return order


def _add_renumbered(
    trees: Any,
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    missing: np.ndarray,
    value: np.ndarray,
    col: int,
) -> None:
    order = np.asarray(_preorder(len(left), 0, left, right), dtype=np.int64)
    new_id = np.full(len(left), -1, dtype=np.int64)
    new_id[order] = np.arange(len(order))
    leaf = left[order] < 0
    trees.add(
        feature[order],
        threshold[order],
        np.where(leaf, -1, new_id[np.where(leaf, 0, left[order])]),
        np.where(leaf, -1, new_id[np.where(leaf, 0, right[order])]),
        missing[order],
        value[order].reshape(-1, 1),
        col,
    )


# ---- LightGBM ----------------------------------------------------------------------------


def _lgbm_flatten(root: dict[str, Any], cls: str) -> tuple[np.ndarray, ...]:
    """(feature, threshold, left, right, missing_left, value) of one dumped tree, preorder."""
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    missing: list[int] = []
    value: list[float] = []
    stack: list[tuple[dict[str, Any], int, int]] = [(root, -1, 0)]  # (node, parent, side)
    while stack:
        node, parent, side = stack.pop()
        me = len(feature)
        if parent >= 0:
            (left if side == 0 else right)[parent] = me
        if "split_feature" not in node:
            if "leaf_const" in node:
                raise _refused(f"{cls} with linear trees (linear_tree)")
            v = float(node["leaf_value"])
            if not math.isfinite(v):
                raise _refused(f"{cls} with a non-finite leaf value")
            feature.append(0)
            threshold.append(0.0)
            left.append(-1)
            right.append(-1)
            missing.append(0)
            value.append(v)
            continue
        if node.get("decision_type") != "<=":
            raise _refused(f"{cls} with categorical splits (categorical_feature)")
        t = float(node["threshold"])
        if not math.isfinite(t) or abs(t) >= 1e300:
            raise _refused(f"{cls} with an infinite split threshold")
        mtype = node.get("missing_type")
        zero_left = t >= 0.0
        default_left = bool(node["default_left"])
        if mtype == "NaN":
            ml = default_left
        elif mtype == "None":
            ml = zero_left  # NaN is read as 0.0
        elif mtype == "Zero":
            if default_left != zero_left:  # zeros and NaN take the default child
                raise _refused(f"{cls} with zero_as_missing splits that send 0 the other way")
            ml = default_left
        else:
            raise _refused(f"{cls} with missing_type {mtype!r}")
        feature.append(int(node["split_feature"]))
        threshold.append(t)
        left.append(-2)
        right.append(-2)
        missing.append(int(ml))
        value.append(0.0)
        stack.append((node["right_child"], me, 1))
        stack.append((node["left_child"], me, 0))
    return (
        np.asarray(feature, dtype=np.int64),
        np.asarray(threshold, dtype=np.float64),
        np.asarray(left, dtype=np.int64),
        np.asarray(right, dtype=np.int64),
        np.asarray(missing, dtype=np.uint8),
        np.asarray(value, dtype=np.float64),
    )


def _lgbm_params(model: Any) -> dict[str, Any]:
    params = dict(model.get_params())
    params.update(getattr(model.booster_, "params", {}) or {})
    return params


def _lgbm(b: Any, trees: Any, model: Any, clf: bool, k: int) -> dict[str, Any]:
    cls = type(model).__name__
    if callable(getattr(model, "objective", None)):
        raise _refused(f"{cls} with a custom objective function")
    params = _lgbm_params(model)
    for key in ("pred_early_stop", "linear_tree", "linear_trees"):
        if params.get(key):
            raise _refused(f"{cls} with {key}")
    boosting = str(params.get("boosting_type", params.get("boosting", "gbdt")))
    if boosting not in ("gbdt", "goss"):
        raise _refused(f"{cls} with boosting_type {boosting!r} (only gbdt is compiled)")
    dump = model.booster_.dump_model()  # num_iteration=None: what predict uses
    if dump.get("average_output"):
        raise _refused(f"{cls} averaging its trees (random forest mode)")
    if dump.get("pandas_categorical"):
        raise _refused(f"{cls} with pandas categorical columns")
    if int(dump.get("max_feature_idx", -1)) + 1 != k:
        raise _refused(f"{cls} was fitted on {int(dump['max_feature_idx']) + 1} features")
    objective = str(dump.get("objective", "")).split()
    name = objective[0] if objective else ""
    options = dict(o.split(":", 1) for o in objective[1:] if ":" in o)
    K = int(dump["num_tree_per_iteration"])
    spec: dict[str, Any] = {"zero_tiny": True, "input": "float64", "nan_mode": 1, "k": K}
    if clf:
        n_classes = len(np.asarray(model.classes_))
        if name == "binary" and K == 1 and n_classes == 2:
            spec.update(post="lgbm_clf", sigmoid=float(options.get("sigmoid", "nan")))
            if not math.isfinite(spec["sigmoid"]):
                raise _refused(f"{cls}: binary objective without a sigmoid parameter")
        elif name == "multiclass" and n_classes == K and n_classes > 2:
            spec.update(post="lgbm_clf")
        else:
            raise _refused(f"{cls} with objective {' '.join(objective)!r}")
    else:
        if "sqrt" in objective[1:] or K != 1:
            raise _refused(f"{cls} with objective {' '.join(objective)!r}")
        if name in _LGBM_IDENTITY:
            spec.update(post="lgbm_reg", link="identity")
        elif name in _LGBM_LOG:
            spec.update(post="lgbm_reg", link="log")
        else:
            raise _refused(f"{cls} with objective {name!r}")
    infos = dump["tree_info"]
    if not infos or len(infos) % K:
        raise _refused(f"{cls}: {len(infos)} trees for {K} per iteration")
    for i, info in enumerate(infos):
        if int(info.get("num_cat", 0)):
            raise _refused(f"{cls} with categorical splits (categorical_feature)")
        f, t, left, right, ml, v = _lgbm_flatten(info["tree_structure"], cls)
        trees.add(f, t, left, right, ml, v.reshape(-1, 1), i % K)
    return spec


# ---- XGBoost -----------------------------------------------------------------------------


def _floats(text: str) -> list[float]:
    value = json.loads(text)
    return [float(v) for v in (value if isinstance(value, list) else [value])]


def _xgb(b: Any, trees: Any, model: Any, clf: bool, k: int) -> dict[str, Any]:
    cls = type(model).__name__
    if callable(getattr(model, "objective", None)):
        raise _refused(f"{cls} with a custom objective function")
    if getattr(model, "enable_categorical", False):
        raise _refused(f"{cls} with enable_categorical")
    missing = model.get_params().get("missing", math.nan)
    if not (isinstance(missing, float) and math.isnan(missing)):
        raise _refused(f"{cls} with missing={missing!r} (only NaN is compiled)")
    booster = model.get_booster()
    raw = json.loads(bytes(booster.save_raw("json")))
    learner = raw["learner"]
    gb = learner["gradient_booster"]
    if gb.get("name") != "gbtree":
        raise _refused(f"{cls} with booster {gb.get('name')!r} (only gbtree is compiled)")
    config = json.loads(booster.save_config())["learner"]
    if config.get("learner_train_param", {}).get("multi_strategy", "one_output_per_tree") != (
        "one_output_per_tree"
    ):
        raise _refused(f"{cls} with multi_output_tree")
    objective = str(learner["objective"]["name"])
    if objective not in _XGB_OBJECTIVES:
        raise _refused(f"{cls} with objective {objective!r}")
    gm = gb["model"]
    if int(learner["learner_model_param"].get("num_target", "1")) != 1:
        raise _refused(f"{cls} with several targets")
    n_trees = len(gm["trees"])
    ranges = [int(v) for v in gm.get("iteration_indptr", [])]
    rounds = len(ranges) - 1 if ranges else n_trees
    try:
        best = model.best_iteration
    except AttributeError:
        best = None
    if best is not None and int(best) + 1 != rounds:
        raise _refused(
            f"{cls} stopped early: predict uses {int(best) + 1} of {rounds} boosting rounds"
        )
    num_class = int(learner["learner_model_param"].get("num_class", "0"))
    K = max(1, num_class)
    base = _floats(learner["learner_model_param"]["base_score"])
    if len(base) == 1:
        base = base * K
    if len(base) != K or not all(math.isfinite(v) for v in base):
        raise _refused(f"{cls}: base_score of {len(base)} values for {K} outputs")
    margin = np.asarray(base, dtype=np.float32)
    if objective == "binary:logistic":
        p = np.float32(base[0])
        if not 0.0 < float(p) < 1.0:
            raise _refused(f"{cls}: base_score {float(p)} is not a probability")
        from mlrepro.accelerate.kernels import xgb_logit  # logf, as XGBoost computes it

        margin = np.asarray([xgb_logit(p)], dtype=np.float32)
    spec: dict[str, Any] = {
        "input": "float32",
        "nan_mode": 1,
        "k": K,
        "acc": "float32",
        "objective": objective,
        "init_values": margin.astype(np.float64),
    }
    if clf:
        n_classes = len(np.asarray(model.classes_))
        ok = (objective == "binary:logistic" and K == 1 and n_classes == 2) or (
            objective in ("multi:softprob", "multi:softmax") and n_classes == K and K > 2
        )
        if not ok:
            raise _refused(f"{cls} with objective {objective!r} for {n_classes} classes")
        spec["post"] = "xgb_clf"
    else:
        if objective != "reg:squarederror" or K != 1:
            raise _refused(f"{cls} with objective {objective!r}")
        spec["post"] = "xgb_reg"
    info = [int(g) for g in gm["tree_info"]]
    if len(info) != n_trees:
        raise _refused(f"{cls}: tree_info does not match the trees")
    for i, tree in enumerate(gm["trees"]):
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise _refused(f"{cls} with vector leaves")
        if any(int(s) != 0 for s in tree.get("split_type", [])) or tree.get("categories"):
            raise _refused(f"{cls} with categorical splits")
        left = np.asarray(tree["left_children"], dtype=np.int64)
        right = np.asarray(tree["right_children"], dtype=np.int64)
        cond = np.asarray(tree["split_conditions"], dtype=np.float64).astype(np.float32)
        feature = np.asarray(tree["split_indices"], dtype=np.int64)
        default_left = np.asarray(tree["default_left"], dtype=np.uint8)
        n = len(left)
        if not (len(right) == len(cond) == len(feature) == len(default_left) == n) or not n:
            raise _refused(f"{cls}: inconsistent tree arrays")
        if not np.isfinite(cond).all():
            raise _refused(f"{cls} with a non-finite split or leaf value")
        if not 0 <= info[i] < K:
            raise _refused(f"{cls}: a tree for output {info[i]} of {K}")
        leaf = left < 0
        # x < t  <=>  x <= the float32 just below t, for every float32 x
        below = np.nextafter(cond, np.float32(-np.inf)).astype(np.float64)
        threshold = np.where(leaf, 0.0, below)
        value = np.where(leaf, cond.astype(np.float64), 0.0)
        _add_renumbered(
            trees, feature, threshold, left, right, default_left, value, info[i]
        )  # fmt: skip
    return spec


def booster_model(b: Any, trees: Any, model: Any, qual: str, k: int) -> dict[str, Any]:
    """The model part of the header (``post`` and its fields); fills ``trees``."""
    if qual in (LGBM_CLF, LGBM_REG):
        return _lgbm(b, trees, model, qual == LGBM_CLF, k)
    return _xgb(b, trees, model, qual == XGB_CLF, k)
