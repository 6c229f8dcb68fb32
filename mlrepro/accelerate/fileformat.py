"""The program file: a zip of ``header.json`` and ``.npy`` arrays; no pickle anywhere.

``load`` trusts nothing: every array is read with ``allow_pickle=False`` and checked for
dtype and shape, every index (slots, inputs, tree children, features, output columns) is
checked against its range, and tree children must point forward inside their own tree, so
a kernel walk always terminates inside the arrays. Malformed data raises ``ValueError``.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import numpy as np

FORMAT = 1
MAGIC = "mlrepro-accelerated-program"
MAX_MEMBER = 2**31  # bytes per array, uncompressed
MAX_TOTAL = 2 << 30  # bytes of all members, uncompressed (the bundle's default cap)
MAX_RATIO = 200.0  # uncompressed / compressed bytes of the whole archive (a zip bomb?)
RATIO_FLOOR = 1 << 20  # archives inflating to less than this are never too compressible
MAX_HEADER = 64 << 20  # header.json
MAX_SLOTS = 1_000_000
_CLASS_DTYPE = re.compile(r"^(u?int(8|16|32|64)|float64|bool|<U\d{1,6}|object)$")
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_DTYPES = {
    "feature": "int64",
    "threshold": "float64",
    "left": "int64",
    "right": "int64",
    "missing_left": "uint8",
    "value": "float64",
    "roots": "int64",
    "out_col": "int64",
    "coef": "float64",
    "intercept": "float64",
}
TREE_POSTS = {"forest_reg", "raw_reg", "hgb_reg", "forest_clf", "tree_clf", "gb_clf", "hgb_clf"}
TREE_POSTS |= {"lgbm_reg", "lgbm_clf", "xgb_reg", "xgb_clf"}  # LightGBM, XGBoost
CLF_POSTS = {"forest_clf", "tree_clf", "gb_clf", "hgb_clf", "logistic", "lgbm_clf", "xgb_clf"}
RAW_CLF_POSTS = {"gb_clf", "hgb_clf", "lgbm_clf", "xgb_clf"}  # one raw score per class
XGB_OBJECTIVES = {"reg:squarederror", "binary:logistic", "multi:softprob", "multi:softmax"}


def dump(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    head = dict(header, magic=MAGIC, format=FORMAT, arrays=sorted(arrays))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("header.json", date_time=(2000, 1, 1, 0, 0, 0))
        zf.writestr(info, json.dumps(head, sort_keys=True, allow_nan=False))
        for name in sorted(arrays):
            out = io.BytesIO()
            np.save(out, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, out.getvalue())
    return buf.getvalue()


def _fail(why: str) -> ValueError:
    return ValueError(f"accelerated program is malformed: {why}")


def _check_sizes(
    zf: zipfile.ZipFile, packed: int, max_total: int, max_ratio: float, ratio_floor: int
) -> None:
    """The sizes the directory declares, before anything is inflated (zipfile never
    inflates a member past its declared size, so these bound the memory a load takes)."""
    total = 0
    for info in zf.infolist():
        limit = MAX_HEADER if info.filename == "header.json" else MAX_MEMBER
        if info.file_size > limit:
            raise _fail(f"member {info.filename} is {info.file_size} bytes, above {limit}")
        total += info.file_size
    if total > max_total:
        raise _fail(f"its arrays add up to {total} bytes, above the limit of {max_total}")
    if total >= ratio_floor and total / max(packed, 1) > max_ratio:
        raise _fail(
            f"it would inflate {total / max(packed, 1):.0f}x ({packed} -> {total} bytes), "
            f"above the limit of {max_ratio:g}x (a zip bomb?)"
        )


def _read_array(zf: zipfile.ZipFile, name: str) -> np.ndarray:
    """Member ``name.npy``: its header is checked against the member's declared size
    before the data is read, and the data is read straight into the array (one copy)."""
    info = zf.getinfo(f"{name}.npy")
    fmt = np.lib.format
    with zf.open(info) as fh:
        try:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = fmt.read_array_header_2_0(fh)
            else:
                raise ValueError(version)
            offset = fh.tell()
        except (ValueError, SyntaxError, TypeError, OverflowError, EOFError):
            raise _fail(f"array {name} cannot be read") from None
        if dtype.hasobject:
            raise _fail(f"array {name} has an object dtype")
        if len(shape) > 2 or any(type(d) is not int or d < 0 for d in shape):
            raise _fail(f"array {name} has shape {shape}")
        count = 1
        for d in shape:
            count *= d
        if offset + count * dtype.itemsize != info.file_size:
            raise _fail(f"array {name}: shape {shape} does not match the member's size")
    with zf.open(info) as fh:
        try:
            arr = fmt.read_array(fh, allow_pickle=False)
        except (ValueError, EOFError, OSError):
            raise _fail(f"array {name} cannot be read") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.hasobject or arr.shape != shape:
        raise _fail(f"array {name} cannot be read")
    return arr


def load(
    data: bytes,
    *,
    max_total: int = MAX_TOTAL,
    max_ratio: float = MAX_RATIO,
    ratio_floor: int = RATIO_FLOOR,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _fail("not bytes")
    try:
        zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise _fail(f"not a program archive ({type(exc).__name__})") from None
    try:
        with zf:
            names = zf.namelist()
            if "header.json" not in names or len(names) != len(set(names)):
                raise _fail("no header")
            _check_sizes(zf, len(data), max_total, max_ratio, ratio_floor)
            try:
                header = json.loads(zf.read("header.json").decode("utf-8"))  # size checked
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise _fail("header is not JSON") from None
            except RecursionError:
                raise _fail("header is nested too deep") from None
            if not isinstance(header, dict) or header.get("magic") != MAGIC:
                raise _fail("not an mlrepro accelerated program")
            if header.get("format") != FORMAT:
                raise _fail(f"format {header.get('format')!r}, this mlrepro reads {FORMAT}")
            listed = header.get("arrays")
            if not isinstance(listed, list) or not all(
                isinstance(n, str) and _NAME.match(n) for n in listed
            ):
                raise _fail("array list")
            if sorted(names) != sorted(["header.json", *[f"{n}.npy" for n in listed]]):
                raise _fail("archive members do not match the header")
            arrays: dict[str, np.ndarray] = {}
            for name in listed:
                arrays[name] = _read_array(zf, name)
    except zipfile.BadZipFile as exc:
        raise _fail(f"corrupt archive ({exc.__class__.__name__})") from None
    except (OSError, EOFError, KeyError, RuntimeError):
        raise _fail("corrupt archive") from None
    try:
        validate(header, arrays)
    except (KeyError, TypeError, IndexError, AttributeError):
        raise _fail("header fields missing or of the wrong type") from None
    return header, arrays


def _int(v: Any, lo: int, hi: int, what: str) -> int:
    if type(v) is not int or not lo <= v < hi:
        raise _fail(f"{what} out of range")
    return v


def _arr(arrays: dict[str, np.ndarray], name: Any, dtype: str, ndim: int) -> np.ndarray:
    if not isinstance(name, str) or name not in arrays:
        raise _fail(f"missing array {name!r}")
    arr = arrays[name]
    if dtype == "unicode":
        if arr.dtype.kind != "U":
            raise _fail(f"array {name} must hold text")
    elif arr.dtype != np.dtype(dtype):
        raise _fail(f"array {name} has dtype {arr.dtype}, expected {dtype}")
    if arr.ndim != ndim:
        raise _fail(f"array {name} has {arr.ndim} dimensions, expected {ndim}")
    return arr


def validate(h: dict[str, Any], a: dict[str, np.ndarray]) -> None:  # noqa: C901
    if h["task"] not in ("regression", "classification"):
        raise _fail("task")
    inputs = h["inputs"]
    if not isinstance(inputs, list) or not inputs:
        raise _fail("inputs")
    for d in inputs:
        if not isinstance(d["name"], str) or d["kind"] not in ("num", "str"):
            raise _fail("input spec")
    if len({d["name"] for d in inputs}) != len(inputs):
        raise _fail("duplicate inputs")
    slots = _int(h["slots"], 1, MAX_SLOTS + 1, "slot count")
    written: set[int] = set()

    def read(ss: Any) -> list[int]:
        if not isinstance(ss, list) or not ss:
            raise _fail("slot list")
        for s in ss:
            if _int(s, 0, slots, "slot") not in written:
                raise _fail("a slot is read before it is written")
        return ss

    if not isinstance(h["ops"], list) or not isinstance(h["steps"], list):
        raise _fail("ops")
    for op in h["ops"]:
        kind = op["op"]
        if kind == "load":
            i = _int(op["input"], 0, len(inputs), "input index")
            if inputs[i]["kind"] != "num":
                raise _fail("load of a text input")
            written.add(_int(op["slot"], 0, slots, "slot"))
        elif kind == "impute":
            ss = read(op["slots"])
            if _arr(a, op["values"], "float64", 1).shape != (len(ss),):
                raise _fail("imputer values shape")
        elif kind == "elementwise":
            ss = read(op["slots"])
            if not isinstance(op["steps"], list):
                raise _fail("elementwise steps")
            for st in op["steps"]:
                if st[0] == "clip":
                    if len(st) != 3 or not all(type(v) in (int, float) for v in st[1:]):
                        raise _fail("clip bounds")
                elif st[0] in ("sub", "add", "mul", "div") and len(st) == 2:
                    if _arr(a, st[1], "float64", 1).shape != (len(ss),):
                        raise _fail("elementwise operand shape")
                else:
                    raise _fail("elementwise operation")
        elif kind in ("onehot", "ordinal"):
            i = _int(op["input"], 0, len(inputs), "input index")
            match = op["match"]
            if match not in ("str", "num") or inputs[i]["kind"] != match:
                raise _fail("category match kind")
            cats = _arr(a, op["cats"], "unicode" if match == "str" else "float64", 1)
            if match == "num" and (np.isnan(cats).any() or (np.diff(cats) <= 0).any()):
                raise _fail("numeric categories must be sorted and unique")
            if kind == "onehot":
                if op["unknown"] not in ("error", "zeros"):
                    raise _fail("unknown handling")
                out = op["slots"]
                if not isinstance(out, list) or len(out) not in (len(cats), len(cats) + 1):
                    raise _fail("one-hot slots")
                for s in out:
                    if s != -1:
                        written.add(_int(s, 0, slots, "slot"))
            else:
                if op["unknown"] is not None and type(op["unknown"]) not in (int, float):
                    raise _fail("unknown value")
                written.add(_int(op["slot"], 0, slots, "slot"))
        else:
            raise _fail(f"operation {kind!r}")
    read(h["columns"])
    model_slots = read(h["model_slots"])
    if not isinstance(h["nan_select"], bool) or not isinstance(h["nan_model"], bool):
        raise _fail("nan flags")
    _validate_model(h, a, len(model_slots))


def _validate_model(h: dict[str, Any], a: dict[str, np.ndarray], n_features: int) -> None:
    m = h["model"]
    classes = h.get("classes")
    n_classes = 0
    if classes is not None:
        if not isinstance(classes["dtype"], str) or not _CLASS_DTYPE.match(classes["dtype"]):
            raise _fail("class dtype")
        values = classes["values"]
        if not isinstance(values, list) or not values:
            raise _fail("classes")
        ok = (str,) if classes["dtype"].startswith(("<U", "object")) else (int, float, bool)
        if not all(type(v) in ok for v in values):
            raise _fail("class values")
        n_classes = len(values)
    post = m["post"]
    if (post in CLF_POSTS) != (classes is not None):
        raise _fail("classes do not match the model")
    if m["kind"] == "linear":
        coef = a.get("coef")
        intercept = a.get("intercept")
        if coef is None or intercept is None or coef.dtype != np.float64:
            raise _fail("linear coefficients")
        if intercept.dtype != np.float64:
            raise _fail("intercept dtype")
        if post == "linear":
            ok_shape = coef.shape == (n_features,) and intercept.ndim == 0
        elif post == "logistic":
            k = coef.shape[0] if coef.ndim == 2 else -1
            ok_shape = (
                coef.ndim == 2
                and coef.shape[1] == n_features
                and intercept.shape == (k,)
                and (k == n_classes or (k == 1 and n_classes == 2))
            )
        else:
            raise _fail("linear post-processing")
        if not ok_shape:
            raise _fail("linear coefficient shapes")
        if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            raise _fail("a coefficient is not finite")
        return
    if m["kind"] != "trees" or post not in TREE_POSTS:
        raise _fail("model kind")
    arr = {
        n: _arr(a, n, _DTYPES[n], 2 if n == "value" else 1)
        for n in (
            "feature",
            "threshold",
            "left",
            "right",
            "missing_left",
            "value",
            "roots",
            "out_col",
        )
    }
    nodes = arr["feature"].shape[0]
    if nodes == 0 or any(
        arr[n].shape[0] != nodes for n in ("threshold", "left", "right", "missing_left", "value")
    ):
        raise _fail("node arrays differ in length")
    roots, out_col = arr["roots"], arr["out_col"]
    trees = roots.shape[0]
    if trees == 0 or out_col.shape != (trees,) or roots[0] != 0 or (np.diff(roots) <= 0).any():
        raise _fail("tree roots")
    if roots[-1] >= nodes or m["trees"] != trees or m["nodes"] != nodes:
        raise _fail("tree count")
    ends = np.append(roots[1:], nodes)
    end_of = np.repeat(ends, np.diff(np.append(roots, nodes)))
    idx = np.arange(nodes)
    left, right, feature = arr["left"], arr["right"], arr["feature"]
    leaf = left == -1
    if ((right == -1) != leaf).any():
        raise _fail("a node has one child")
    inner = ~leaf
    if nodes >= 2**31 - 2:
        raise _fail("too many nodes")
    for child in (left, right):
        if ((child[inner] <= idx[inner]) | (child[inner] >= end_of[inner])).any():
            raise _fail("child index out of range")
    if ((feature[inner] < 0) | (feature[inner] >= n_features)).any():
        raise _fail("feature index out of range")
    if (arr["missing_left"] > 1).any():
        raise _fail("missing_left flags")
    # no library fits a NaN threshold or a non-finite leaf (they would score every row
    # one way, or answer inf/NaN): such a program was not compiled from a fitted model
    if np.isnan(arr["threshold"][inner]).any():
        raise _fail("a split has a NaN threshold")
    if not np.isfinite(arr["value"][leaf]).all():
        raise _fail("a leaf value is not finite")
    if m["input"] not in ("float32", "float64") or m["nan_mode"] not in (1, 2):
        raise _fail("tree input")
    if type(m["scale"]) is not float:
        raise _fail("scale")
    width = arr["value"].shape[1]
    if m["width"] == "classes":
        if post not in ("forest_clf", "tree_clf") or width != n_classes:
            raise _fail("value width")
        if (out_col != 0).any():
            raise _fail("output columns")
    else:
        k = _int(m["k"], 1, 10_000, "output width")
        if width != 1 or (out_col < 0).any() or (out_col >= k).any():
            raise _fail("output columns")
        if post in RAW_CLF_POSTS and not (k == n_classes or (k == 1 and n_classes == 2)):
            raise _fail("output width does not match the classes")
        if post not in RAW_CLF_POSTS and k != 1:
            raise _fail("output width")
    init = m.get("init")
    if init is not None and _arr(a, init, "float64", 1).shape[0] != (
        width if m["width"] == "classes" else m["k"]
    ):
        raise _fail("init shape")
    if m.get("link") not in (None, "identity", "log"):
        raise _fail("link")
    _validate_booster(m)


def _validate_booster(m: dict[str, Any]) -> None:
    """The fields LightGBM (``lgbm_*``) and XGBoost (``xgb_*``) programs add."""
    post = m["post"]
    if m.get("zero_tiny", False) not in (True, False) or m.get("acc", "float64") not in (
        "float64",
        "float32",
    ):
        raise _fail("booster fields")
    if post == "lgbm_reg" and m.get("link") not in ("identity", "log"):
        raise _fail("link")
    if post == "lgbm_clf" and m["k"] == 1:
        sigmoid = m.get("sigmoid")
        if type(sigmoid) is not float or not np.isfinite(sigmoid):
            raise _fail("sigmoid")
    if post in ("xgb_reg", "xgb_clf"):
        objective = m.get("objective")
        if objective not in XGB_OBJECTIVES or m.get("acc") != "float32":
            raise _fail("objective")
        if (post == "xgb_reg") != (objective == "reg:squarederror"):
            raise _fail("objective")
        if (objective == "binary:logistic" and m["k"] != 1) or (
            objective.startswith("multi:") and m["k"] < 3
        ):
            raise _fail("objective")
