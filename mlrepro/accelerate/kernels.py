"""numba kernels: tree-ensemble accumulation over a packed node table.

Packed (``pack``) from validated program arrays: ``feat`` int32 (-1 at a leaf), ``lr``
int32 pairs (left, right) per node, ``ml`` 1 where a NaN goes left, thresholds (for
float32 inputs: the float64 threshold rounded down to float32, which decides ``x <= t``
identically for every float32 ``x``). ``fileformat.validate`` has checked that every child
lies after its parent inside its own tree, so a walk always ends at a leaf in the arrays.

A NaN fails ``x <= threshold`` and goes right unless ``ml`` sends it left (sklearn trees and
HistGradientBoosting use ``missing_go_to_left``; GradientBoosting compares NaN like any
number, its ``ml`` is 0). Per row, trees are added in order: ``out[i, col[t]] += scale *
value[leaf]`` (or the whole value vector for forests of classifiers), as scikit-learn
adds. Layout for speed: the tree loop is outside the row loop (a tree's nodes stay in cache
while a chunk of rows streams through it) and four rows walk a tree together (their
independent loads overlap); ``accumulate_parallel`` splits the rows into chunks (prange).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba import prange

CHUNK = 16384  # rows per parallel chunk


@nb.njit(cache=False, nogil=True, inline="always")
def _step_plain(x, i, f, node, lr, thr, ml):
    return lr[2 * node + (not (x[i, f] <= thr[node]))]


@nb.njit(cache=False, nogil=True, inline="always")
def _step_nan(x, i, f, node, lr, thr, ml):
    v = x[i, f]  # branch-free: a NaN goes right (1) minus its missing-goes-left flag
    return lr[2 * node + (int(not (v <= thr[node])) - int(v != v) * ml[node])]


@nb.njit(cache=False, nogil=True, inline="always")
def _add(out, i, leaf, col, value, scale, width):
    if width == 1:
        out[i, col] += scale * value[leaf, 0]
    else:
        for c in range(width):
            out[i, c] += value[leaf, c]


def _make_rows(step):  # noqa: ANN001, ANN202
    @nb.njit(cache=False, nogil=True)
    def rows(x, lo, hi, roots, out_col, feat, lr, ml, thr, value, scale, out):
        width = value.shape[1]
        for t in range(roots.shape[0]):
            root = roots[t]
            col = out_col[t]
            i = lo
            while i + 4 <= hi:
                a0 = root
                a1 = root
                a2 = root
                a3 = root
                f0 = feat[root]
                f1 = f0
                f2 = f0
                f3 = f0
                while f0 >= 0 or f1 >= 0 or f2 >= 0 or f3 >= 0:
                    if f0 >= 0:
                        a0 = step(x, i, f0, a0, lr, thr, ml)
                        f0 = feat[a0]
                    if f1 >= 0:
                        a1 = step(x, i + 1, f1, a1, lr, thr, ml)
                        f1 = feat[a1]
                    if f2 >= 0:
                        a2 = step(x, i + 2, f2, a2, lr, thr, ml)
                        f2 = feat[a2]
                    if f3 >= 0:
                        a3 = step(x, i + 3, f3, a3, lr, thr, ml)
                        f3 = feat[a3]
                _add(out, i, a0, col, value, scale, width)
                _add(out, i + 1, a1, col, value, scale, width)
                _add(out, i + 2, a2, col, value, scale, width)
                _add(out, i + 3, a3, col, value, scale, width)
                i += 4
            while i < hi:
                node = root
                f = feat[node]
                while f >= 0:
                    node = step(x, i, f, node, lr, thr, ml)
                    f = feat[node]
                _add(out, i, node, col, value, scale, width)
                i += 1

    return rows


def _make_entry(step, parallel):  # noqa: ANN001, ANN202
    rows = _make_rows(step)
    if not parallel:

        @nb.njit(cache=False, nogil=True)
        def serial(x, roots, out_col, feat, lr, ml, thr, value, scale, out):
            rows(x, 0, x.shape[0], roots, out_col, feat, lr, ml, thr, value, scale, out)

        return serial

    @nb.njit(cache=False, nogil=True, parallel=True)
    def par(x, roots, out_col, feat, lr, ml, thr, value, scale, out):
        n = x.shape[0]
        chunks = (n + CHUNK - 1) // CHUNK
        for b in prange(chunks):
            lo = b * CHUNK
            rows(x, lo, min(lo + CHUNK, n), roots, out_col, feat, lr, ml, thr, value, scale, out)

    return par


# (has NaN, parallel) -> kernel; inputs without NaN take the plain comparison
KERNELS = {
    (nan, par): _make_entry(_step_nan if nan else _step_plain, par)
    for nan in (False, True)
    for par in (False, True)
}


def pack(feature, left, right, missing_left, threshold, nan_mode, float32):  # noqa: ANN001, ANN201
    """(feat, lr, ml, thr): the kernels' node table from validated program arrays."""
    leaf = left < 0
    feat = np.where(leaf, -1, feature).astype(np.int32)
    lr = np.empty(2 * feature.shape[0], dtype=np.int32)
    lr[0::2] = np.where(leaf, 0, left)
    lr[1::2] = np.where(leaf, 0, right)
    ml = (missing_left if nan_mode == 1 else np.zeros_like(missing_left)).astype(np.uint8)
    if not float32:
        return feat, lr, ml, np.ascontiguousarray(threshold, dtype=np.float64)
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return feat, lr, ml, t32


# ---- XGBoost's float32 output transforms (src/common/math.h), operation for operation ----


@nb.njit(cache=False, nogil=True)
def xgb_sigmoid(margin):  # noqa: ANN001, ANN201
    """``common::Sigmoid(float)``: 1.0f / (expf(min(-x, 88.7f)) + 1.0f + 1e-16f)."""
    out = np.empty(margin.shape[0], dtype=np.float32)
    cap = np.float32(88.7)
    one = np.float32(1.0)
    eps = np.float32(1e-16)
    for i in range(margin.shape[0]):
        x = -margin[i]
        if cap < x:
            x = cap
        denom = math.exp(x) + one + eps
        out[i] = one / denom
    return out


@nb.njit(cache=False, nogil=True)
def xgb_softmax(margin):  # noqa: ANN001, ANN201
    """``common::Softmax``: float32 max and expf, the sum in double, divided as float32."""
    n, k = margin.shape
    out = np.empty((n, k), dtype=np.float32)
    for i in range(n):
        wmax = margin[i, 0]
        for j in range(1, k):
            if margin[i, j] > wmax:
                wmax = margin[i, j]
        wsum = 0.0
        for j in range(k):
            e = math.exp(margin[i, j] - wmax)
            out[i, j] = e
            wsum += np.float64(e)
        total = np.float32(wsum)
        for j in range(k):
            out[i, j] = out[i, j] / total
    return out
