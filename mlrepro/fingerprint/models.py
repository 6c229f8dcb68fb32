"""Models: class, parameters and fitted state, walked into one canonical byte stream."""

from __future__ import annotations

import enum
import sys
import types
from operator import itemgetter
from typing import Any

import blake3

from mlrepro.errors import FingerprintError
from mlrepro.fingerprint.digest import (
    _BLOCK,
    _F64,
    _LITTLE_ENDIAN,
    _U64,
    _finish,
    _hasher,
    _qualname,
)
from mlrepro.fingerprint.frames import fingerprint_frame
from mlrepro.fingerprint.native import native_form, native_types

#: Estimator attributes that change how a model is computed, never what it computes
#: (scikit-learn's, and the thread/log settings of LightGBM, XGBoost and CatBoost).
EXECUTION_ONLY_PARAMS: frozenset[str] = frozenset(
    {
        "n_jobs",
        "verbose",
        "pre_dispatch",
        "memory",
        "_n_threads",
        "verbosity",
        "nthread",
        "num_threads",
        "thread_count",
    }
)

# --------------------------------------------------------------------------------- models

_CALLABLES = (
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
)
_CONTAINER_TAGS: dict[type, bytes] = {
    list: b"l",
    tuple: b"t",
    dict: b"d",
    set: b"S",
    frozenset: b"Z",
}


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined by a class statement


def _python_state_only(cls: type) -> bool:
    """True if every class in the MRO (but ``object``) is a Python class.

    Only then is ``vars(obj)`` all of its state: a C base (a file, a lock, a native model)
    keeps state ``__dict__`` does not show, which pickling must reveal or refuse.
    """
    return all(b.__flags__ & _HEAPTYPE for b in cls.__mro__[:-1])


def _custom_pickling(cls: type) -> bool:
    return any(
        getattr(cls, name, None) is not getattr(object, name, None)
        for name in ("__reduce_ex__", "__reduce__", "__getstate__")
    )


class _Refused(Exception):
    """An object that cannot be encoded; ``path`` is filled in while unwinding."""

    def __init__(self, type_name: str, why: str) -> None:
        super().__init__(type_name)
        self.type_name = type_name
        self.why = why
        self.path: list[str] = []


def _key_text(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


class _Encoder:
    """Writes a tagged, self-delimiting byte encoding of an object graph.

    With a hasher the bytes go to it; without one they collect in ``buf`` (used to get the
    encoding of dict keys and set items, which are emitted in sorted encoded order).
    """

    def __init__(
        self,
        hasher: blake3.blake3 | None,
        ancestors: dict[int, int],
        native: tuple[type, ...] | None = None,
    ) -> None:
        self.hasher = hasher
        self.buf = bytearray()
        # Objects on the current path only: shared (non-cyclic) references are walked
        # each time so aliasing, which pickling may not keep, never changes the result.
        self.ancestors = ancestors
        self.np = sys.modules.get("numpy")
        self.pd = sys.modules.get("pandas")
        # LightGBM/XGBoost/CatBoost model classes, if loaded (looked up once per walk)
        self.native = native_types() if native is None else native

    def flush(self) -> None:
        if self.hasher is not None:
            self.hasher.update(self.buf)
            self.buf.clear()

    def _raw(self, data: Any) -> None:
        """Large payloads go straight to the hasher instead of through ``buf``.

        Always as a byte view: ``bytearray += ndarray`` would add element-wise (numpy
        broadcasting), not append.
        """
        data = memoryview(data).cast("B")
        if self.hasher is None:
            self.buf += data
        else:
            self.flush()
            self.hasher.update(data)

    def _text(self, tag: bytes, s: str) -> None:
        data = s.encode("utf-8", "surrogatepass")
        self.buf += tag + _U64.pack(len(data)) + data

    def _enter(self, obj: Any) -> bool:
        depth = self.ancestors.get(id(obj))
        if depth is not None:  # a cycle: point back at the ancestor
            self.buf += b"@" + _U64.pack(len(self.ancestors) - depth)
            return False
        self.ancestors[id(obj)] = len(self.ancestors)
        return True

    def _leave(self, obj: Any) -> None:
        del self.ancestors[id(obj)]

    def encoding(self, obj: Any) -> bytes:
        sub = _Encoder(None, self.ancestors, self.native)
        sub.walk(obj)
        return bytes(sub.buf)

    def walk(self, obj: Any) -> None:
        if len(self.buf) >= _BLOCK:
            self.flush()
        t = type(obj)
        if obj is None:
            self.buf += b"N"
        elif t is bool:
            self.buf += b"T" if obj else b"F"
        elif t is int:
            self._text(b"i", str(obj))
        elif t is float:
            self.buf += b"f" + _F64.pack(obj)
        elif t is str:
            self._text(b"s", obj)
        elif t is bytes or t is bytearray:
            self.buf += (b"b" if t is bytes else b"B") + _U64.pack(len(obj))
            self._raw(obj)
        elif t is complex:
            self.buf += b"c" + _F64.pack(obj.real) + _F64.pack(obj.imag)
        elif t in _CONTAINER_TAGS:
            self._container(obj, t)
        else:
            self._other(obj)

    def _container(self, obj: Any, base: type) -> None:
        if not self._enter(obj):
            return
        self.buf += _CONTAINER_TAGS[base] + _U64.pack(len(obj))
        if base is dict:
            items = []
            for k, v in obj.items():
                try:
                    items.append((self.encoding(k), k, v))
                except _Refused as exc:
                    exc.path.insert(0, f"<key {_key_text(k)}>")
                    raise
            items.sort(key=itemgetter(0))
            for encoded, key, value in items:
                self.buf += encoded
                try:
                    self.walk(value)
                except _Refused as exc:
                    exc.path.insert(0, f"[{_key_text(key)}]")
                    raise
        elif base is set or base is frozenset:
            try:
                encoded_items = sorted(self.encoding(x) for x in obj)
            except _Refused as exc:
                exc.path.insert(0, "<set item>")
                raise
            for item in encoded_items:
                self.buf += item
        else:
            for i, item in enumerate(obj):
                try:
                    self.walk(item)
                except _Refused as exc:
                    exc.path.insert(0, f"[{i}]")
                    raise
        self._leave(obj)

    def _array(self, arr: Any) -> None:
        np = self.np
        assert np is not None  # an ndarray was seen, so numpy is imported
        shape = _U64.pack(arr.ndim) + b"".join(_U64.pack(d) for d in arr.shape)
        if arr.dtype.names is not None:
            # Field by field: the padding between fields may hold arbitrary bytes.
            self.buf += b"r" + shape + _U64.pack(len(arr.dtype.names))
            for name in arr.dtype.names:
                self._text(b"s", name)
                self._array(arr[name])
        elif arr.dtype.hasobject or arr.dtype.kind == "T":
            # Object and StringDType buffers hold pointers: walk the elements instead.
            self.buf += b"o" + shape
            for i, item in enumerate(arr.reshape(-1)):
                try:
                    self.walk(item)
                except _Refused as exc:
                    exc.path.insert(0, f"[flat {i}]")
                    raise
        else:
            if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not _LITTLE_ENDIAN):
                arr = arr.astype(arr.dtype.newbyteorder("<"))
            if not arr.flags.c_contiguous:
                arr = arr.copy(order="C")
            self._text(b"a", arr.dtype.str)
            self.buf += shape
            self._raw(arr.reshape(-1).view(np.uint8))

    def _object_items(self, tag: bytes, obj: Any, items: Any) -> None:
        if not self._enter(obj):
            return
        items = sorted(items, key=itemgetter(0))
        self._text(tag, _qualname(type(obj)))
        self.buf += _U64.pack(len(items))
        for name, value in items:
            self._text(b"s", name)
            try:
                self.walk(value)
            except _Refused as exc:
                exc.path.insert(0, f".{name}")
                raise
        self._leave(obj)

    def _other(self, obj: Any) -> None:
        np, pd = self.np, self.pd
        if np is not None and isinstance(obj, np.ndarray):  # includes np.memmap
            self._array(obj)
        elif np is not None and isinstance(obj, np.generic):
            self.buf += b"g"
            self._array(np.asarray(obj))
        elif pd is not None and isinstance(obj, (pd.DataFrame, pd.Series)):
            frame = obj if isinstance(obj, pd.DataFrame) else obj.to_frame(name="values")
            self.buf += b"P" if frame is obj else b"Q"
            if frame is not obj:
                self.walk(obj.name)
            self.buf += fingerprint_frame(frame).encode()
            self.walk(obj.index)
        elif pd is not None and isinstance(obj, pd.Index):
            self.buf += b"I"
            self.walk(list(obj.names))
            self.walk(obj.to_numpy())
        elif (
            self.native
            and isinstance(obj, self.native)
            and ((native := self._native(obj)) is not None)
        ):
            if self._enter(obj):
                self._text(b"X", _qualname(type(obj)))  # a boosting model's own dump
                self.walk(native)
                self._leave(obj)
        elif isinstance(obj, _CALLABLES):
            self._text(b"q", _qualname(obj))
        elif np is not None and isinstance(obj, np.ufunc):  # numpy.log1p etc.: by name
            self._text(b"q", f"numpy.{obj.__name__}")
        elif isinstance(obj, enum.Enum):
            self._text(b"e", _qualname(type(obj)))
            self.walk(obj.name)
        elif np is not None and isinstance(obj, np.random.RandomState):
            self.buf += b"R"
            self.walk(obj.get_state())
        elif np is not None and isinstance(obj, np.random.Generator):
            self.buf += b"G"
            self.walk(obj.bit_generator.state)
        elif (base := next((b for b in _CONTAINER_TAGS if isinstance(obj, b)), None)) is not None:
            self._text(b"C", _qualname(type(obj)))  # namedtuple, OrderedDict, Bunch, ...
            self._container(obj, base)
        elif scalar := next((b for b in (str, int, float, bytes) if isinstance(obj, b)), None):
            self._text(b"C", _qualname(type(obj)))
            self.walk(scalar(obj))
        elif (
            callable(getattr(obj, "get_params", None))
            and hasattr(obj, "__dict__")
            and _python_state_only(type(obj))
        ):
            # A scikit-learn style estimator: hyper-parameters, fitted and private state.
            attrs = vars(obj).items()
            self._object_items(
                b"E", obj, [kv for kv in attrs if kv[0] not in EXECUTION_ONLY_PARAMS]
            )
        elif (
            hasattr(obj, "__dict__")
            and not _custom_pickling(type(obj))
            and _python_state_only(type(obj))
        ):
            self._object_items(b"V", obj, vars(obj).items())
        else:
            self._reduced(obj)

    def _native(self, obj: Any) -> Any:
        try:
            return native_form(obj)
        except Exception as exc:  # a library that cannot dump its model
            raise _Refused(_qualname(type(obj)), f"its model dump failed ({exc})") from None

    def _reduced(self, obj: Any) -> None:
        # Whatever pickle would store (e.g. a Cython Tree: class, shape args, node arrays),
        # so a pickling round-trip keeps the fingerprint by construction.
        try:
            reduced = obj.__reduce_ex__(4)
        except Exception as exc:
            raise _Refused(_qualname(type(obj)), f"it cannot be pickled ({exc})") from None
        if isinstance(reduced, str):  # a module-level singleton
            self._text(b"q", f"{getattr(obj, '__module__', None)}.{reduced}")
            return
        if not self._enter(obj):
            return
        self._text(b"O", _qualname(type(obj)))
        parts = list(reduced)
        for i in (3, 4):  # list and dict items come as iterators
            if i < len(parts) and parts[i] is not None:
                parts[i] = list(parts[i])
        self.walk(tuple(parts))
        self._leave(obj)


def fingerprint_model(obj: Any) -> str:
    """Fingerprint of a fitted estimator, pipeline or any picklable object.

    Execution-only settings (``EXECUTION_ONLY_PARAMS``) are left out, so changing ``n_jobs``
    keeps the fingerprint; every hyper-parameter and fitted value is in it.
    """
    hasher = _hasher()
    encoder = _Encoder(hasher, {})
    try:
        encoder.walk(obj)
    except _Refused as exc:
        where = "".join(exc.path) or "(the object itself)"
        raise FingerprintError(
            f"cannot fingerprint the fitted state: {type(obj).__name__}{''.join(exc.path)} "
            f"is a {exc.type_name}, which mlrepro cannot encode deterministically: {exc.why}",
            hint=f"keep objects like {exc.type_name} out of the fitted model (attribute "
            f"{where}), or store them in a picklable, plain form",
        ) from None
    encoder.flush()
    return _finish(hasher)
