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

Ensembles of small trees (every tree a proper tree of at most 64 leaves: GradientBoosting,
HistGradientBoosting, LightGBM, XGBoost as usually configured) take the *leaf-mask* kernels
instead (``pack_masks``), which evaluate every split of a tree for a block of rows with no
data-dependent branch: the leaves of a tree are numbered left to right, each split carries
the mask of the leaves it rules out when the row goes right, and a row's leaf is the lowest
bit left in the AND of those masks (the leftmost leaf consistent with every decision is the
one the walk reaches). The comparisons are the walk's comparisons, so the leaf -- and the
sum, added tree by tree in the same order -- is the same; the inner loops run over a
contiguous block of one feature's values (``x`` feature-major), which the compiler turns
into vector compares.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
from llvmlite import ir
from numba import prange
from numba.extending import intrinsic

CHUNK = 16384  # rows per parallel chunk
BLOCK = 512  # rows per leaf-mask block (one feature's block stays in a few cache lines)
MAX_MASK_LEAVES = 64


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


# ---- leaf-mask kernels (ensembles of small trees) ----


@intrinsic
def _cttz(typingctx, x):  # noqa: ANN001, ANN202
    """Count of trailing zero bits (LLVM ``cttz``); the callers never pass 0."""

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return x(x), codegen


_lowest_bit: Any = _cttz  # numba calls it with one argument; the stub types see two


def _make_mask_block(mask_type):  # noqa: ANN001, ANN202
    @nb.njit(cache=False, nogil=True)
    def block(x, lo, hi, starts, nf, nt, nml, nmask, lstart, lval, out_col, scale, out, m):
        n_rows = hi - lo
        width = lval.shape[1]
        full = mask_type(-1)
        for t in range(starts.shape[0] - 1):
            for r in range(n_rows):
                m[r] = full
            for k in range(starts[t], starts[t + 1]):
                row = x[nf[k], lo:hi]
                th = nt[k]
                mk = nmask[k]
                if nml[k]:  # a NaN goes left: right only when v > th
                    for r in range(n_rows):
                        m[r] &= mk if row[r] > th else full
                else:  # a NaN goes right: right unless v <= th
                    for r in range(n_rows):
                        m[r] &= full if row[r] <= th else mk
            base = lstart[t]
            if width == 1:
                col = out_col[t]
                for r in range(n_rows):
                    out[lo + r, col] += scale * lval[base + _lowest_bit(m[r]), 0]
            else:
                for r in range(n_rows):
                    leaf = base + _lowest_bit(m[r])
                    for c in range(width):
                        out[lo + r, c] += lval[leaf, c]

    return block


def _make_mask_entry(mask_type, parallel):  # noqa: ANN001, ANN202
    block = _make_mask_block(mask_type)
    if not parallel:

        @nb.njit(cache=False, nogil=True)
        def serial(x, starts, nf, nt, nml, nmask, lstart, lval, out_col, scale, out):
            n = x.shape[1]
            m = np.empty(BLOCK, dtype=mask_type)
            for lo in range(0, n, BLOCK):
                hi = min(lo + BLOCK, n)
                block(x, lo, hi, starts, nf, nt, nml, nmask, lstart, lval, out_col, scale, out, m)

        return serial

    @nb.njit(cache=False, nogil=True, parallel=True)
    def par(x, starts, nf, nt, nml, nmask, lstart, lval, out_col, scale, out):
        n = x.shape[1]
        for b in prange((n + BLOCK - 1) // BLOCK):
            m = np.empty(BLOCK, dtype=mask_type)
            lo = b * BLOCK
            hi = min(lo + BLOCK, n)
            block(x, lo, hi, starts, nf, nt, nml, nmask, lstart, lval, out_col, scale, out, m)

    return par


# (mask bits, parallel) -> kernel
MASK_KERNELS = {
    (bits, par): _make_mask_entry(nb.uint32 if bits == 32 else nb.uint64, par)
    for bits in (32, 64)
    for par in (False, True)
}


def pack_masks(packed, roots, value):  # noqa: ANN001, ANN201
    """The leaf-mask tables of ``pack``'s node table, or None when a tree has more than 64
    leaves or is not a proper tree (a node with other than one parent): then the walk.

    Returns (bits, (starts, nf, nt, nml, nmask, lstart, lval)): per tree the range of its
    splits in ``nf``/``nt``/``nml``/``nmask`` and the first row of its leaves in ``lval``
    (the leaves' values, left to right)."""
    feat, lr, ml, thr = packed
    n = feat.shape[0]
    roots = np.asarray(roots, dtype=np.int64)
    inner = feat >= 0
    left, right = lr[0::2].astype(np.int64), lr[1::2].astype(np.int64)
    parents = np.bincount(left[inner], minlength=n) + np.bincount(right[inner], minlength=n)
    expected = np.ones(n, dtype=np.int64)
    expected[roots] = 0
    if not np.array_equal(parents, expected):
        return None
    leaves = np.add.reduceat((~inner).astype(np.int64), roots) if n else np.zeros(0, np.int64)
    if leaves.size == 0 or int(leaves.max()) > MAX_MASK_LEAVES:
        return None
    count = np.ones(n, dtype=np.int64)  # leaves under each node; children follow parents
    for i in range(n - 1, -1, -1):
        if inner[i]:
            count[i] = count[left[i]] + count[right[i]]
    start = np.zeros(n, dtype=np.int64)  # in-order position of the node's first leaf
    for i in range(n):
        if inner[i]:
            start[left[i]] = start[i]
            start[right[i]] = start[i] + count[left[i]]
    leaf_rank = np.flatnonzero(~inner)
    tree_of = np.searchsorted(roots, np.arange(n), side="right") - 1
    lbase = np.concatenate(([0], np.cumsum(leaves)))
    lval = np.empty((int(lbase[-1]), value.shape[1]), dtype=np.float64)
    lval[lbase[tree_of[leaf_rank]] + start[leaf_rank]] = value[leaf_rank]
    bits = 32 if int(leaves.max()) <= 32 else 64
    mask_np = np.uint32 if bits == 32 else np.uint64
    split = np.flatnonzero(inner)
    lcount, lstart_ = count[left[split]], start[left[split]]
    ruled_out = ((np.uint64(1) << lcount.astype(np.uint64)) - np.uint64(1)) << lstart_.astype(
        np.uint64
    )  # lcount < 64 always: the right subtree holds a leaf
    nmask = (~ruled_out & np.uint64(2**bits - 1)).astype(mask_np)
    starts = np.searchsorted(split, roots).astype(np.int64)
    starts = np.append(starts, split.shape[0])
    return bits, (
        starts,
        feat[split].astype(np.int64),
        thr[split],
        ml[split],
        nmask,
        lbase[:-1].astype(np.int64),
        lval,
    )


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
