"""Clean-up of thresholded network output: one liver, no holes, tumors inside it, no specks."""
from __future__ import annotations

import cc3d
import numpy as np
from scipy import ndimage

from .result import LIVER, TUMOR


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean (z, y, x) mask (empty stays empty)."""
    if not mask.any():
        return mask.astype(bool)
    return cc3d.largest_k(mask.astype(np.uint8), k=1, connectivity=26) > 0


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """`mask` with enclosed cavities filled (3-D, then slice by slice along z)."""
    filled = ndimage.binary_fill_holes(mask)
    for z in np.flatnonzero(filled.any(axis=(1, 2))):
        filled[z] = ndimage.binary_fill_holes(filled[z])
    return filled


def drop_small_components(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """`mask` without 26-connected components smaller than `min_voxels`."""
    if min_voxels <= 1 or not mask.any():
        return mask.astype(bool)
    return cc3d.dust(mask.astype(np.uint8), threshold=int(min_voxels), connectivity=26) > 0


def compose_labels(
    liver_or_tumor: np.ndarray,
    tumor: np.ndarray,
    *,
    voxel_mm3: float,
    min_lesion_mm3: float,
    keep_largest_liver: bool = True,
    fill_liver_holes: bool = True,
) -> np.ndarray:
    """Label map (z, y, x) uint8 (0/1/2) from a foreground (liver ∪ tumor) mask and a tumor mask.

    Tumor voxels are kept only inside the final liver ∪ tumor region; lesions smaller than
    `min_lesion_mm3` are dropped (they become liver).
    """
    fg = liver_or_tumor | tumor
    if keep_largest_liver:
        fg = largest_component(fg)
    if fill_liver_holes:
        fg = fill_holes(fg)
    tumor = drop_small_components(tumor & fg, int(np.ceil(min_lesion_mm3 / voxel_mm3)))
    labels = np.zeros(fg.shape, dtype=np.uint8)
    labels[fg] = LIVER
    labels[tumor] = TUMOR
    return labels


def right_side_fraction(mask: np.ndarray, hu: np.ndarray, body_hu: float = -500.0) -> float:
    """Fraction of the voxels of `mask` on the patient's right of the body's midline, slice by slice.

    Arrays are (z, y, x) in canonical LPS order (x grows towards the patient's left); the midline of a
    slice is the x centroid of its body voxels (HU > `body_hu`).
    """
    zz, _, xx = np.nonzero(mask)
    if zz.size == 0:
        return 0.0
    body = hu > body_hu
    columns = body.sum(axis=1)  # (z, x) body voxels per column
    centre = (columns * np.arange(hu.shape[2])).sum(axis=1) / np.maximum(columns.sum(axis=1), 1)
    return float(np.mean(xx < centre[zz]))


def implausible_liver(mask: np.ndarray, hu: np.ndarray, voxel_ml: float, min_ml: float,
                      median_hu: tuple[float, float], min_right_fraction: float = 0.0, body_hu: float = -500.0,
                      unit: str = "HU") -> str | None:
    """Why a liver candidate (boolean mask over a (z, y, x) canonical-LPS HU array) is not a liver, or None if it may be one.

    For an MR, `hu` holds its intensities, `median_hu` and `body_hu` are in them and `unit` names them.
    """
    volume = float(mask.sum()) * voxel_ml
    if volume < min_ml:
        return f"liver candidate of {volume:.1f} ml is below the {min_ml:g} ml minimum"
    median = float(np.median(hu[mask]))
    if not median_hu[0] <= median <= median_hu[1]:
        return f"liver candidate has median {median:.0f} {unit}, outside liver tissue's {median_hu[0]:g}..{median_hu[1]:g} {unit}"
    right = right_side_fraction(mask, hu, body_hu)
    if right < min_right_fraction:
        return (f"liver candidate lies on the body's midline or left ({100 * right:.0f} % of it on the patient's right, "
                f"livers measured 79-95 %): e.g. the bladder; a situs inversus is not supported")
    return None
