"""pyliverlesionseg's resampling as separable matrices: pymirc's `zoom3d` there, `scipy.ndimage.zoom` back.

pymirc's zoom3d (the package the lesion network was trained with) gives each axis of n voxels ceil(n * zoom) voxels
of exactly the target size on a grid centred on the image: going down it averages the voxels each new voxel covers
(area weights), going up it interpolates linearly with zero beyond the image. The lesion mask goes back with
`ndimage.zoom(order=1)`, which maps the first and last voxel centres onto each other ("corner-aligned"). Both are
linear along each axis, so each is a small (new x old) matrix per axis; a block of the result is those matrices'
rows applied in turn to the block of the image their columns reach.
"""
from __future__ import annotations

import math

import numpy as np


def zoomed_size(n: int, zoom: float) -> int:
    """Voxels along an axis of `n` voxels after zoom3d by `zoom` (new per old voxel)."""
    return n if zoom == 1 else math.ceil(n / (1.0 / zoom))  # pymirc's own arithmetic (it works with 1 / zoom)


def zoom3d_matrix(n: int, zoom: float) -> np.ndarray:
    """(ceil(n * zoom), n) float64 weights of pymirc zoom3d along one axis (centred grid; area average down, linear up
    with zero beyond the image)."""
    m = zoomed_size(n, zoom)
    w = np.zeros((m, n))
    if zoom == 1:
        np.fill_diagonal(w, 1.0)
    elif zoom > 1:  # linear interpolation at the new voxel centres, in old-voxel coordinates
        centre = (1.0 / zoom) * (np.arange(m) - 0.5 * m + 0.5) + 0.5 * n - 0.5
        left = np.floor(centre).astype(int)
        for col, weight in ((left, left + 1 - centre), (left + 1, centre - left)):
            inside = (col >= 0) & (col < n)
            w[np.flatnonzero(inside), col[inside]] = weight[inside]
    else:  # each old voxel spread over the new voxels it overlaps, by overlap (new-voxel units)
        step = 1.0 / (1.0 / zoom)
        lo = step * (np.arange(n) - 0.5 * n) + 0.5 * m
        hi = step * (np.arange(n) + 1 - 0.5 * n) + 0.5 * m
        first, last = np.floor(lo).astype(int), np.ceil(hi).astype(int) - 1
        same = first == last
        w[first[same], np.flatnonzero(same)] = step
        split = np.flatnonzero(~same)
        cut = np.ceil(lo[split])
        w[first[split], split] = cut - lo[split]
        w[last[split], split] = hi[split] - cut
    return w


def corner_aligned_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) float64 weights of `scipy.ndimage.zoom(order=1)` along one axis (first and last centres aligned)."""
    w = np.zeros((n_out, n_in))
    if n_in == 1 or n_out == 1:
        w[:, 0] = 1.0
        return w
    pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1))  # scipy's arithmetic: a voxel centre 1 ulp past a
    # neighbour's gives that neighbour a weight > 0, which "any value > 0" keeps, as the original does
    left = np.minimum(np.floor(pos).astype(int), n_in - 2)
    frac = pos - left
    w[np.arange(n_out), left] = 1 - frac
    w[np.arange(n_out), left + 1] = frac
    return w


def reach(w: np.ndarray, rows: slice) -> slice:
    """Columns of `w` that its `rows` give a non-zero weight to (an empty slice if none)."""
    cols = np.flatnonzero(np.any(w[rows] != 0, axis=0))
    return slice(int(cols[0]), int(cols[-1]) + 1) if cols.size else slice(0, 0)


def apply_block(volume: np.ndarray, matrices: list[np.ndarray], rows: tuple[slice, ...],
                offset: tuple[int, ...] = (0, 0, 0)) -> np.ndarray:
    """`rows` (z, y, x) of the separable resampling of an image by `matrices` (one per axis, columns = image voxels),
    from `volume`: the image's block starting at voxel `offset` (the image is zero outside it). float64."""
    out = np.asarray(volume, dtype=np.float64)
    for axis, (w, r, o) in enumerate(zip(matrices, rows, offset)):
        part = w[r, o: o + out.shape[axis]]
        out = np.moveaxis(np.tensordot(part, out, axes=(1, axis)), 0, axis)
    return out
