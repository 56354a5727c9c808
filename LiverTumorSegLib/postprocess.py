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


def implausible_liver(mask: np.ndarray, hu: np.ndarray, voxel_ml: float, min_ml: float,
                      median_hu: tuple[float, float]) -> str | None:
    """Why a liver candidate (boolean mask over an HU array) is not a liver, or None if it may be one."""
    volume = float(mask.sum()) * voxel_ml
    if volume < min_ml:
        return f"liver candidate of {volume:.1f} ml is below the {min_ml:g} ml minimum"
    median = float(np.median(hu[mask]))
    if not median_hu[0] <= median <= median_hu[1]:
        return f"liver candidate has median {median:.0f} HU, outside liver tissue's {median_hu[0]:g}..{median_hu[1]:g} HU"
    return None
