"""Lesion analysis: per-tumor volume, longest axial diameter, centroid, mean HU; organ totals."""
from __future__ import annotations

from dataclasses import replace

import cc3d
import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from .geometry import LPS_TO_RAS, Geometry
from .result import LIVER, TUMOR, Lesion


def _voxels_to_lps(geometry: Geometry, ijk: np.ndarray) -> np.ndarray:
    """(N, 3) continuous (i, j, k) indices to (N, 3) LPS mm."""
    m = geometry.ijk_to_lps()
    return ijk @ m[:3, :3].T + m[:3, 3]


def _max_pairwise(points: np.ndarray) -> float:
    """Largest distance between any two of (N, 2) points, via their convex hull."""
    if len(points) < 2:
        return 0.0
    try:
        points = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        pass  # collinear or too few points: use them all
    diff = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((diff**2).sum(-1)).max())


def longest_axial_diameter_mm(component_zyx: np.ndarray, geometry: Geometry) -> float:
    """Longest edge-to-edge extent (mm) of a lesion within any single axial (z) slice.

    In-plane distances are measured in the slice's own (i, j) plane scaled by the spacing, which
    equals patient-space distance for any orthonormal (also oblique) direction.
    """
    corners = np.array([(dx, dy) for dx in (-0.5, 0.5) for dy in (-0.5, 0.5)])
    scale = np.array(geometry.spacing[:2])
    best = 0.0
    for z in np.flatnonzero(component_zyx.any(axis=(1, 2))):
        jj, ii = np.nonzero(component_zyx[z])
        pts = (np.stack([ii, jj], 1)[:, None, :] + corners[None]).reshape(-1, 2)
        best = max(best, _max_pairwise(np.unique(pts, axis=0) * scale))
    return best


def measure_lesions(labels: np.ndarray, hu: np.ndarray, geometry: Geometry) -> list[Lesion]:
    """One Lesion per 26-connected tumor component, largest first, ids from 1."""
    comps = cc3d.connected_components((labels == TUMOR).astype(np.uint8), connectivity=26)
    voxel_ml = float(np.prod(geometry.spacing)) / 1000.0
    lesions = []
    for idx, sl in enumerate(ndimage.find_objects(comps), start=1):
        if sl is None:
            continue
        comp = comps[sl] == idx
        zyx = np.argwhere(comp) + [s.start for s in sl]
        lps = _voxels_to_lps(geometry, zyx[:, ::-1].mean(0, keepdims=True).astype(float))[0]
        lesions.append(Lesion(
            id=0,
            volume_ml=round(len(zyx) * voxel_ml, 3),
            longest_axial_diameter_mm=round(longest_axial_diameter_mm(comp, _shifted(geometry, sl)), 1),
            centroid_lps=tuple(float(v) for v in lps),
            centroid_ras=tuple(float(v) for v in LPS_TO_RAS @ lps),
            mean_hu=round(float(hu[sl][comp].mean()), 1),
            voxels=int(len(zyx)),
        ))
    lesions.sort(key=lambda l: -l.voxels)
    return [replace(lesion, id=i) for i, lesion in enumerate(lesions, start=1)]


def _shifted(geometry: Geometry, sl: tuple[slice, ...]) -> Geometry:
    """Geometry of the sub-array `sl` (z, y, x slices) of an image with `geometry`."""
    offset = np.array([sl[2].start, sl[1].start, sl[0].start], dtype=float)
    origin = _voxels_to_lps(geometry, offset[None])[0]
    return Geometry(geometry.spacing, tuple(origin.tolist()), geometry.direction)


def organ_volumes_ml(labels: np.ndarray, geometry: Geometry) -> tuple[float, float]:
    """(liver incl. tumors, tumor) volumes in ml."""
    voxel_ml = float(np.prod(geometry.spacing)) / 1000.0
    tumor = int(np.count_nonzero(labels == TUMOR))
    liver = int(np.count_nonzero(labels == LIVER)) + tumor
    return liver * voxel_ml, tumor * voxel_ml


def slices_with_tumor(labels: np.ndarray) -> np.ndarray:
    """Per axial slice (z): True where any tumor voxel is present ("Tumor" vs "Sane")."""
    return (labels == TUMOR).any(axis=(1, 2))
