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

Ensembles of small trees (every tree a proper tree with at most 64 leaves under either
child of its root: GradientBoosting, HistGradientBoosting, LightGBM, XGBoost as usually
configured) take the *leaf-mask* kernels instead (``pack_masks``), which evaluate every
split of a tree for a block of rows with no data-dependent branch: the leaves under either
child of the root are numbered left to right, each split carries the mask of the leaves of
its side it rules out when the row goes right, and a row's leaf on a side is the lowest bit
left in the AND of that side's masks (the leftmost leaf consistent with every decision is
the one the walk reaches); the root's own split then picks the side. The comparisons are
the walk's comparisons, so the leaf -- and the sum, added tree by tree in the same order --
is the same. Layout for speed: ``x`` is feature-major, so the inner loops run over a
contiguous block of one feature's values and become vector compares; a side's masks are 32
bits wide where it has at most 32 leaves (as many lanes as float32 compares), and four
splits are ANDed per pass over the block (a quarter of the loads and stores of the masks);
the leaves' values are gathered in a loop of their own and summed in a block-sized
accumulator.
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
GROUP = 4  # leaf-mask splits ANDed in one pass over a block of rows


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
    def half(x, lo, hi, g0, g1, gml, gf, gt, gmask, m):
        """AND into ``m`` the masks of groups g0..g1 (GROUP splits each, one NaN rule)."""
        n_rows = hi - lo
        full = mask_type(-1)
        for r in range(n_rows):
            m[r] = full
        for g in range(g0, g1):
            k = GROUP * g
            r0, r1 = x[gf[k], lo:hi], x[gf[k + 1], lo:hi]
            r2, r3 = x[gf[k + 2], lo:hi], x[gf[k + 3], lo:hi]
            t0, t1, t2, t3 = gt[k], gt[k + 1], gt[k + 2], gt[k + 3]
            m0, m1, m2, m3 = gmask[k], gmask[k + 1], gmask[k + 2], gmask[k + 3]
            if gml[g]:  # a NaN goes left: right only when v > t
                for r in range(n_rows):
                    m[r] &= ((m0 if r0[r] > t0 else full) & (m1 if r1[r] > t1 else full)) & (
                        (m2 if r2[r] > t2 else full) & (m3 if r3[r] > t3 else full)
                    )
            else:  # a NaN goes right: right unless v <= t
                for r in range(n_rows):
                    m[r] &= ((full if r0[r] <= t0 else m0) & (full if r1[r] <= t1 else m1)) & (
                        (full if r2[r] <= t2 else m2) & (full if r3[r] <= t3 else m3)
                    )

    @nb.njit(cache=False, nogil=True)
    def block(x, lo, hi, tree, groups, rthr, gml, gf, gt, gmask, lval, out_col, out, work,
              leaf, acc):  # fmt: skip
        n_rows = hi - lo
        width = lval.shape[1]
        ncol = out.shape[1]
        for c in range(ncol):  # the running sums start from out (the initial scores)
            for r in range(n_rows):
                acc[c, r] = out[lo + r, c]
        left, right = work[0], work[1]
        for t in range(tree.shape[0]):
            half(x, lo, hi, groups[t, 0], groups[t, 1], gml, gf, gt, gmask, left)
            half(x, lo, hi, groups[t, 1], groups[t, 2], gml, gf, gt, gmask, right)
            row = x[tree[t, 0], lo:hi]
            th = rthr[t]
            lb = nb.int32(tree[t, 1])
            rb = nb.int32(tree[t, 2])
            if tree[t, 3]:  # the root's NaN rule
                for r in range(n_rows):
                    if row[r] > th:
                        leaf[r] = rb + nb.int32(_lowest_bit(right[r]))
                    else:
                        leaf[r] = lb + nb.int32(_lowest_bit(left[r]))
            else:
                for r in range(n_rows):
                    if row[r] <= th:
                        leaf[r] = lb + nb.int32(_lowest_bit(left[r]))
                    else:
                        leaf[r] = rb + nb.int32(_lowest_bit(right[r]))
            if width == 1:
                a = acc[out_col[t]]
                for r in range(n_rows):
                    a[r] += lval[leaf[r], 0]
            else:
                for c in range(width):
                    a = acc[c]
                    for r in range(n_rows):
                        a[r] += lval[leaf[r], c]
        for c in range(ncol):
            for r in range(n_rows):
                out[lo + r, c] = acc[c, r]

    return block


def _make_mask_entry(mask_type, parallel):  # noqa: ANN001, ANN202
    block = _make_mask_block(mask_type)
    if not parallel:

        @nb.njit(cache=False, nogil=True)
        def serial(x, tree, groups, rthr, gml, gf, gt, gmask, lval, out_col, out):
            n = x.shape[1]
            work = np.empty((2, BLOCK), dtype=mask_type)
            leaf = np.empty(BLOCK, dtype=np.int32)
            acc = np.empty((out.shape[1], BLOCK), dtype=out.dtype)
            for lo in range(0, n, BLOCK):
                hi = min(lo + BLOCK, n)
                block(x, lo, hi, tree, groups, rthr, gml, gf, gt, gmask, lval, out_col, out, work,
                      leaf, acc)  # fmt: skip

        return serial

    @nb.njit(cache=False, nogil=True, parallel=True)
    def par(x, tree, groups, rthr, gml, gf, gt, gmask, lval, out_col, out):
        n = x.shape[1]
        for b in prange((n + BLOCK - 1) // BLOCK):
            work = np.empty((2, BLOCK), dtype=mask_type)
            leaf = np.empty(BLOCK, dtype=np.int32)
            acc = np.empty((out.shape[1], BLOCK), dtype=out.dtype)
            lo = b * BLOCK
            hi = min(lo + BLOCK, n)
            block(x, lo, hi, tree, groups, rthr, gml, gf, gt, gmask, lval, out_col, out, work, leaf,
                  acc)  # fmt: skip

    return par


# (mask bits, parallel) -> kernel
MASK_KERNELS = {
    (bits, par): _make_mask_entry(nb.uint32 if bits == 32 else nb.uint64, par)
    for bits in (32, 64)
    for par in (False, True)
}


def pack_masks(packed, roots, value, scale, acc_dtype):  # noqa: ANN001, ANN201
    """The leaf-mask tables of ``pack``'s node table, or None when a side of a tree (the
    subtree under a child of its root) has more than 64 leaves or a tree is not a proper
    tree (a node with other than one parent): then the walk.

    The leaves of either side of a tree, numbered left to right, get their own mask of 32
    bits (64 when a side has more than 32 leaves): a pass over a block of rows ANDs one
    side's masks, then the root's split picks the side. The splits of a side are taken
    GROUP at a time with one NaN rule (padded with splits whose mask rules nothing out).

    Returns (bits, (tree, groups, rthr, gml, gf, gt, gmask, lval)): per tree ``tree`` holds
    the root's feature, the first leaf (row of ``lval``) of either side and the root's NaN
    rule, ``groups`` the group ranges of its left and right side, ``rthr`` the root's
    threshold; ``lval`` holds the leaves' values, times ``scale`` where one value per leaf
    (the product the walk computes per row), in ``acc_dtype`` where that changes no value."""
    feat, lr, ml, thr = packed
    n = feat.shape[0]
    roots = np.asarray(roots, dtype=np.int64)
    n_trees = roots.shape[0]
    inner = feat >= 0
    if n_trees == 0 or int(np.add.reduceat((~inner).astype(np.int64), roots).max()) > 128:
        return None
    left, right = lr[0::2].astype(np.int64), lr[1::2].astype(np.int64)
    parents = np.bincount(left[inner], minlength=n) + np.bincount(right[inner], minlength=n)
    is_root = np.zeros(n, dtype=bool)
    is_root[roots] = True
    if not np.array_equal(parents, (~is_root).astype(np.int64)):
        return None
    count = np.ones(n, dtype=np.int64)  # leaves under each node; children follow parents
    for i in range(n - 1, -1, -1):
        if inner[i]:
            count[i] = count[left[i]] + count[right[i]]
    start = np.zeros(n, dtype=np.int64)  # in-order position of the node's first leaf
    side = np.zeros(n, dtype=np.int64)  # under the root's left (0) or right (1) child
    for i in np.flatnonzero(inner).tolist():
        start[left[i]] = start[i]
        start[right[i]] = start[i] + count[left[i]]
        side[left[i]] = 0 if is_root[i] else side[i]
        side[right[i]] = 1 if is_root[i] else side[i]
    split_root = inner[roots]
    left_leaves = np.where(split_root, count[left[roots]], 1)
    widest = int(np.maximum(left_leaves, np.where(split_root, count[right[roots]], 1)).max())
    if widest > 64:
        return None
    bits = 32 if widest <= 32 else 64
    mask_np = np.uint32 if bits == 32 else np.uint64
    full = (1 << bits) - 1
    tree_of = np.searchsorted(roots, np.arange(n), side="right") - 1
    lbase = np.concatenate(([0], np.cumsum(count[roots])))
    leaf_rank = np.flatnonzero(~inner)
    lval = np.empty((int(lbase[-1]), value.shape[1]), dtype=np.float64)
    lval[lbase[tree_of[leaf_rank]] + start[leaf_rank]] = value[leaf_rank]
    if value.shape[1] == 1:
        lval *= scale
    if np.array_equal(lval.astype(acc_dtype).astype(np.float64), lval):
        lval = lval.astype(acc_dtype)
    # the other splits, sorted by (tree, side, NaN rule); their masks numbered within the side
    below = np.flatnonzero(inner & ~is_root)
    below = below[np.lexsort((below, ml[below], side[below], tree_of[below]))]
    first = start[left[below]] - np.where(side[below] == 1, left_leaves[tree_of[below]], 0)
    ruled_out = (np.uint64(1) << count[left[below]].astype(np.uint64)) - np.uint64(1)
    # count[left] < 64 always (the right subtree holds a leaf): the shift cannot overflow
    masks = (~(ruled_out << first.astype(np.uint64)) & np.uint64(full)).astype(mask_np)
    key = (tree_of[below] * 2 + side[below]) * 2 + ml[below].astype(np.int64)
    runs = np.searchsorted(key, np.arange(4 * n_trees + 1))  # run k: key == k
    pieces: list[tuple[np.ndarray, int]] = []  # (rows of ``below``, padding)
    groups = np.zeros((n_trees, 3), dtype=np.int64)
    done = 0
    for t in range(n_trees):
        groups[t, 0] = done
        for k in range(4 * t, 4 * t + 4):
            size = int(runs[k + 1] - runs[k])
            pad = -size % GROUP
            pieces.append((np.arange(runs[k], runs[k + 1]), pad))
            done += (size + pad) // GROUP
            if k == 4 * t + 1:
                groups[t, 1] = done
        groups[t, 2] = done
    take = np.concatenate([np.append(rows, np.full(pad, -1)) for rows, pad in pieces])
    take = take.astype(np.int64)
    filler = take < 0
    node = below[np.where(filler, 0, take)]
    gf = np.where(filler, 0, feat[node]).astype(np.int64)
    gt = np.where(filler, 0, thr[node]).astype(thr.dtype)
    gmask = np.where(filler, mask_np(full), masks[np.where(filler, 0, take)]).astype(mask_np)
    gml = ml[node][::GROUP]  # a group's first split is never padding
    tree = np.stack(
        [np.where(split_root, feat[roots], 0), lbase[:-1], lbase[:-1] + left_leaves * split_root,
         np.where(split_root, ml[roots], 0)], axis=1,
    ).astype(np.int64)  # fmt: skip
    rthr = np.where(split_root, thr[roots], 0).astype(thr.dtype)
    return bits, (tree, groups, rthr, gml.astype(np.uint8), gf, gt, gmask, lval)


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


@nb.njit(cache=False)
def xgb_logit(p):  # noqa: ANN001, ANN201
    """``ProbToMargin`` of binary:logistic: -logf(1.0f / p - 1.0f), float32 throughout (a
    float64 log rounded to float32 is an ulp off for some base scores, e.g. 0.56653124)."""
    one = np.float32(1.0)
    return -math.log(one / p - one)


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
