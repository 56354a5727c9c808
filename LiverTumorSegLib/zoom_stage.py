"""The tumor stage as pyliverlesionseg runs it: on the zoom3d grid of the whole CT, tiled over the dilated liver.

For a tumor manifest with `resampling: "zoom3d"` and `tile_placement: "liver_grid"`: the CT is normalised on its own
grid and zoomed (pymirc zoom3d, `zoom.py`) onto the model spacing, the liver likewise (> 0.5), dilated, and the input
masked outside it; the network tiles the dilated liver's bounding box (`tiling.py`); its mask (> 0.5) goes back to
the CT grid by corner-aligned linear zoom, every voxel > 0. Only the blocks the liver needs are computed. Works on the
CT's canonical LPS view (axes permuted and flipped, never resampled), as pyliverlesionseg works on canonical RAS.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import SimpleITK as sitk

from .preprocess import dilated
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


def grown(s: slice, by: int, n: int) -> slice:
    """`s` grown by `by` on both sides, clipped to [0, n)."""
    return slice(max(0, s.start - by), min(n, s.stop + by))


@dataclass
class ZoomedLiver:
    """The dilated liver on the zoom3d grid of a CT's canonical LPS view: the per-axis zoom matrices (new x old),
    the box of the dilated liver on the new grid and the dilated liver inside it."""

    down: list[np.ndarray]
    box: tuple[slice, slice, slice]
    dilated: np.ndarray


def zoomed_liver(liver: np.ndarray, spacing: list[float], manifest) -> ZoomedLiver | None:
    """The liver (boolean, canonical LPS view of the CT, `spacing` per axis) zoomed to the manifest's spacing (> 0.5)
    and dilated by its `liver_mask` voxels; None when nothing is left."""
    down = [zoom3d_matrix(n, s / t) for n, s, t in zip(liver.shape, spacing, manifest.spacing[::-1])]
    lbox = mask_box(liver)
    if lbox is None:
        return None
    steps = int(manifest.liver_mask.get("dilation_voxels", 0))
    rows = [grown(reach(w.T, s), steps, w.shape[0]) for w, s in zip(down, lbox.slices_zyx())]  # rows reaching the liver
    cols = [reach(w, r) for w, r in zip(down, rows)]
    zoomed = apply_block(liver[tuple(cols)], down, tuple(rows), offset=tuple(c.start for c in cols)) > 0.5
    zoomed = dilated(zoomed, steps)
    inner = mask_box(zoomed)
    if inner is None:
        return None
    box = tuple(slice(r.start + s.start, r.start + s.stop) for r, s in zip(rows, inner.slices_zyx()))
    return ZoomedLiver(down, box, zoomed[inner.slices_zyx()])


def canonical(ct: sitk.Image, box: Box, liver_roi: np.ndarray) -> tuple[tuple, np.ndarray, np.ndarray, list[float]]:
    """(view, HU, liver, spacing): the CT's canonical LPS view, its HU and the liver (given on `box`) in that view,
    and the spacing (mm) along its (z, y, x) axes."""
    view = lps_view(ct)
    hu = sitk.GetArrayViewFromImage(ct)
    whole = np.zeros(hu.shape, dtype=bool)
    whole[box.slices_zyx()] = liver_roi
    return view, to_lps(hu, view), to_lps(whole, view), [ct.GetSpacing()[2 - p] for p in view[0]]


def zoom_tumor_mask(ct: sitk.Image, box: Box, liver_roi: np.ndarray, model: Model, *, modality: str,
                    mirror_axes: tuple[int, ...] = (), cancel=None, progress: Progress | None = None) -> np.ndarray:
    """Boolean tumor mask (z, y, x) on the `box` of `ct`, given the liver there (`liver_roi`, boolean, same shape)."""
    m = model.manifest
    view, hu, liver, spacing = canonical(ct, box, liver_roi)
    zl = zoomed_liver(liver, spacing, m)
    if zl is None:
        return np.zeros(liver_roi.shape, dtype=bool)
    cols = tuple(reach(w, r) for w, r in zip(zl.down, zl.box))
    norm = m.input_for(modality).normalization(hu[cols])
    x = apply_block(norm, zl.down, zl.box, offset=tuple(c.start for c in cols)).astype(np.float32)
    x[~zl.dilated] = np.float32(m.liver_mask["fill_value"])
    starts = liver_grid(x.shape, m.output_size)
    log.info("stage 2 (tumor) on the zoom3d grid: %d windows over the dilated liver's %s-voxel box", len(starts), x.shape)
    to_probs = ACTIVATIONS[m.output_activation]
    probs = predict_tiles(
        x, lambda patch: mirrored_probabilities(model.run, patch, to_probs, mirror_axes), m.patch_size, starts,
        output_crop=m.output_crop, pad_value=0.0 if m.pad_value is None else m.pad_value, cancel=cancel, progress=progress)
    tumor_new = probs[m.class_index("tumor")] > 0.5
    return back_on_ct(tumor_new, zl.box, [w.shape[0] for w in zl.down], view, box, ct)


def back_on_ct(mask_new: np.ndarray, box_new: tuple[slice, ...], new_shape: list[int], view: tuple, box: Box,
               ct: sitk.Image) -> np.ndarray:
    """A model-grid mask (on `box_new` of the zoomed canonical grid) zoomed back corner-aligned onto the CT, every
    voxel > 0, as a boolean (z, y, x) array on the `box` of the CT."""
    whole = np.zeros(ct.GetSize()[::-1], dtype=bool)
    canon = to_lps(whole, view)
    up = [corner_aligned_matrix(n, k) for n, k in zip(canon.shape, new_shape)]
    rows = tuple(reach(w.T, s) for w, s in zip(up, box_new))  # CT rows the mask reaches
    canon[rows] = apply_block(mask_new, up, rows, offset=tuple(s.start for s in box_new)) > 0
    return whole[box.slices_zyx()]
