"""numba kernels: tree-ensemble accumulation over a flat node table.

The node table is validated before any kernel sees it (``fileformat.validate``): every
child index points forward inside its own tree, so a walk always ends at a leaf and never
leaves the arrays. ``nan_mode`` 1 sends NaN where ``missing_left`` says (sklearn trees,
HistGradientBoosting), 2 compares it like any number (NaN goes right: GradientBoosting).
Accumulation per row is in tree order, ``out[i, col[t]] += scale * value[leaf]`` (or the
whole value vector for forests of classifiers), exactly as scikit-learn adds.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import prange

BLOCK = 64


@nb.njit(cache=False, nogil=True, inline="always")
def _leaf(x, i, root, feature, threshold, left, right, missing_left, nan_mode):
    node = root
    while left[node] >= 0:
        v = x[i, feature[node]]
        if nan_mode == 1 and np.isnan(v):
            node = left[node] if missing_left[node] else right[node]
        elif v <= threshold[node]:
            node = left[node]
        else:
            node = right[node]
    return node


@nb.njit(cache=False, nogil=True)
def _rows(
    x,
    lo,
    hi,
    roots,
    out_col,
    feature,
    threshold,
    left,
    right,
    missing_left,
    value,
    scale,
    nan_mode,
    out,
):
    width = value.shape[1]
    for t in range(roots.shape[0]):
        root = roots[t]
        col = out_col[t]
        for i in range(lo, hi):
            leaf = _leaf(x, i, root, feature, threshold, left, right, missing_left, nan_mode)
            if width == 1:
                out[i, col] += scale * value[leaf, 0]
            else:
                for c in range(width):
                    out[i, c] += value[leaf, c]


@nb.njit(cache=False, nogil=True)
def accumulate_serial(
    x, roots, out_col, feature, threshold, left, right, missing_left, value, scale, nan_mode, out
):
    n = x.shape[0]
    for lo in range(0, n, BLOCK):
        hi = min(lo + BLOCK, n)
        _rows(
            x,
            lo,
            hi,
            roots,
            out_col,
            feature,
            threshold,
            left,
            right,
            missing_left,
            value,
            scale,
            nan_mode,
            out,
        )


@nb.njit(cache=False, nogil=True, parallel=True)
def accumulate_parallel(
    x, roots, out_col, feature, threshold, left, right, missing_left, value, scale, nan_mode, out
):
    n = x.shape[0]
    blocks = (n + BLOCK - 1) // BLOCK
    for b in prange(blocks):
        lo = b * BLOCK
        hi = min(lo + BLOCK, n)
        _rows(
            x,
            lo,
            hi,
            roots,
            out_col,
            feature,
            threshold,
            left,
            right,
            missing_left,
            value,
            scale,
            nan_mode,
            out,
        )
