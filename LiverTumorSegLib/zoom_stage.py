"""The tumor stage as pyliverlesionseg runs it: on the zoom3d grid of the whole CT, tiled over the dilated liver.

For a tumor manifest with `resampling: "zoom3d"` and `tile_placement: "liver_grid"`: the CT is normalised on its own
grid and zoomed (pymirc zoom3d, `zoom.py`) onto the model spacing, the liver likewise (> 0.5), dilated, and the input
masked outside it; the network tiles the dilated liver's bounding box (`tiling.py`); its mask (> 0.5) goes back to
the CT grid by corner-aligned linear zoom, every voxel > 0. Only the blocks the liver needs are computed. Works on the
CT's canonical LPS view (axes permuted and flipped, never resampled), as pyliverlesionseg works on canonical RAS.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .roi import Box, mask_box
from .runtime import Model
from .sliding_window import ACTIVATIONS, mirrored_probabilities
from .tiling import liver_grid, predict_tiles
from .zoom import apply_block, corner_aligned_matrix, reach, zoom3d_matrix

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]


def lps_view(image: sitk.Image) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """(permutation, flips) taking the image's (z, y, x) array to canonical LPS (z: S, y: P, x: L increasing):
    `canonical = np.flip(array.transpose(permutation), flipped axes)`."""
    direction = np.array(image.GetDirection()).reshape(3, 3)  # column a: physical direction of index axis a (x, y, z)
    perm, flip = [0, 0, 0], [False, False, False]
    for a in range(3):
        p = int(np.argmax(np.abs(direction[:, a])))
        perm[2 - p], flip[2 - p] = 2 - a, bool(direction[p, a] < 0)
    return tuple(perm), tuple(flip)


def to_lps(array: np.ndarray, view: tuple) -> np.ndarray:
    """A (z, y, x) array of the image as its canonical LPS view (no copy)."""
    perm, flip = view
    return np.flip(array.transpose(perm), [a for a in range(3) if flip[a]])


def rows_reaching(w: np.ndarray, cols: slice) -> slice:
    """Rows of `w` with a non-zero weight on `cols`."""
    rows = np.flatnonzero(np.any(w[:, cols] != 0, axis=1))
    return slice(int(rows[0]), int(rows[-1]) + 1)


def grown(s: slice, by: int, n: int) -> slice:
    """`s` grown by `by` on both sides, clipped to [0, n)."""
    return slice(max(0, s.start - by), min(n, s.stop + by))


def zoom_tumor_mask(ct: sitk.Image, box: Box, liver_roi: np.ndarray, model: Model, *, modality: str,
                    mirror_axes: tuple[int, ...] = (), cancel=None, progress: Progress | None = None) -> np.ndarray:
    """Boolean tumor mask (z, y, x) on the `box` of `ct`, given the liver there (`liver_roi`, boolean, same shape)."""
    m = model.manifest
    view = lps_view(ct)
    perm = view[0]
    spacing = [ct.GetSpacing()[2 - p] for p in perm]  # per canonical (z, y, x) axis
    hu = to_lps(sitk.GetArrayViewFromImage(ct), view)
    whole = np.zeros(sitk.GetArrayViewFromImage(ct).shape, dtype=bool)
    whole[box.slices_zyx()] = liver_roi
    liver = to_lps(whole, view)
    target = m.spacing[::-1]
    zooms = [s / t for s, t in zip(spacing, target)]
    down = [zoom3d_matrix(n, z) for n, z in zip(hu.shape, zooms)]
    lbox = mask_box(liver).slices_zyx()
    rows = [rows_reaching(w, s) for w, s in zip(down, lbox)]
    steps = int(m.liver_mask.get("dilation_voxels", 0))
    rows = [grown(r, steps, w.shape[0]) for r, w in zip(rows, down)]
    liver_new = apply_block(liver[tuple(reach(w, r) for w, r in zip(down, rows))], down, tuple(rows),
                            offset=tuple(reach(w, r).start for w, r in zip(down, rows))) > 0.5
    if steps:
        liver_new = ndimage.binary_dilation(liver_new, ndimage.iterate_structure(ndimage.generate_binary_structure(3, 2), steps))
    inner = mask_box(liver_new)
    if inner is None:
        return np.zeros(liver_roi.shape, dtype=bool)
    box_new = tuple(slice(r.start + s.start, r.start + s.stop) for r, s in zip(rows, inner.slices_zyx()))
    dilated = liver_new[inner.slices_zyx()]
    cols = tuple(reach(w, r) for w, r in zip(down, box_new))
    norm = m.input_for(modality).normalization(hu[cols])
    x = apply_block(norm, down, box_new, offset=tuple(c.start for c in cols)).astype(np.float32)
    x[~dilated] = np.float32(m.liver_mask["fill_value"])
    log.info("stage 2 (tumor) on the zoom3d grid: a %s-voxel box of the dilated liver", x.shape)
    to_probs = ACTIVATIONS[m.output_activation]
    probs = predict_tiles(
        x, lambda patch: mirrored_probabilities(model.run, patch, to_probs, mirror_axes), m.patch_size,
        liver_grid(x.shape, m.output_size), output_crop=m.output_crop, pad_value=0.0 if m.pad_value is None else m.pad_value,
        cancel=cancel, progress=progress)
    tumor_new = probs[m.class_index("tumor")] > 0.5
    return back_on_ct(tumor_new, box_new, [w.shape[0] for w in down], whole.shape, view, box)


def back_on_ct(mask_new: np.ndarray, box_new: tuple[slice, ...], new_shape: list[int], ct_shape: tuple[int, ...],
               view: tuple, box: Box) -> np.ndarray:
    """A model-grid mask (on `box_new` of the zoomed canonical grid) zoomed back corner-aligned onto the CT, every
    voxel > 0, as a boolean (z, y, x) array on the `box` of the CT."""
    whole = np.zeros(ct_shape, dtype=bool)
    canon = to_lps(whole, view)
    up = [corner_aligned_matrix(n, k) for n, k in zip(canon.shape, new_shape)]
    rows = tuple(rows_reaching(w, s) for w, s in zip(up, box_new))
    canon[rows] = apply_block(mask_new, up, rows, offset=tuple(s.start for s in box_new)) > 0
    return whole[box.slices_zyx()]
