"""Synthetic liver tumors (after Hu et al., "Label-Free Liver Tumor Segmentation", CVPR 2023):
textured, hypo-dense, irregular ellipsoids of random size placed inside the liver, labelled 2."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .config import SyntheticTumorConfig

LIVER, TUMOR = 1, 2


def _blob_distance(shape: tuple[int, ...], spacing_zyx: np.ndarray, radii_mm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Normalised ellipsoid distance (< 1 inside) on a box of `shape`, randomly rotated and warped."""
    coords = np.stack(np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing_zyx)], indexing="ij"), -1)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # random rotation
    d = np.sqrt((((coords @ q) / radii_mm) ** 2).sum(-1))
    warp = ndimage.gaussian_filter(rng.normal(size=shape), sigma=max(1.0, min(shape) / 6))
    warp /= np.abs(warp).max() + 1e-6
    return d + 0.25 * warp  # irregular outline


def _tumor_box(center: np.ndarray, half: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Slices of a box of half-size `half` voxels around `center`, clipped to `shape`."""
    lo = np.maximum(center - half, 0)
    hi = np.minimum(center + half + 1, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def insert_one(hu: np.ndarray, labels: np.ndarray, spacing_zyx: np.ndarray, center: np.ndarray,
               radius_mm: float, contrast_hu: float, texture_hu: float, rng: np.random.Generator) -> None:
    """Insert one tumor centred at voxel `center` (in place): HU blended inside the liver, label 2 in its core."""
    radii = radius_mm * rng.uniform(0.7, 1.3, size=3)
    half = np.ceil(1.4 * radii.max() / spacing_zyx).astype(int)
    box = _tumor_box(center, half, hu.shape)
    shape = tuple(s.stop - s.start for s in box)
    offset = np.array([s.start for s in box]) + (np.array(shape) - 1) / 2 - center
    d = _blob_distance(shape, spacing_zyx, radii, rng)
    d = ndimage.shift(d, -offset, order=1, mode="nearest")  # keep the blob centred on `center`
    liver = (labels[box] == LIVER) | (labels[box] == TUMOR)
    weight = np.clip((1.0 - d) / 0.3, 0.0, 1.0) * liver  # soft boundary, never outside the liver
    liver_hu = float(np.median(hu[box][liver])) if liver.any() else float(np.median(hu[box]))
    texture = ndimage.gaussian_filter(rng.normal(size=shape), sigma=1.0)
    texture *= texture_hu / (texture.std() + 1e-6)
    target = liver_hu - contrast_hu + texture
    hu[box] = hu[box] * (1 - weight) + target * weight
    labels[box][(weight > 0.5) & liver] = TUMOR


def insert_tumors(hu: np.ndarray, labels: np.ndarray, spacing_zyx, cfg: SyntheticTumorConfig,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Copies of (HU, labels) (z, y, x) with 1..max_tumors synthetic tumors inside the liver (label 1)."""
    hu = np.array(hu, dtype=np.float32)
    labels = np.array(labels, dtype=np.uint8)
    spacing = np.asarray(spacing_zyx, dtype=float)
    liver_idx = np.argwhere(labels == LIVER)
    if len(liver_idx) < 50:
        return hu, labels
    for _ in range(int(rng.integers(1, cfg.max_tumors + 1))):
        center = liver_idx[rng.integers(len(liver_idx))]
        radius = rng.uniform(*cfg.radius_mm)
        contrast = rng.uniform(*cfg.contrast_hu)
        insert_one(hu, labels, spacing, center, radius, contrast, cfg.texture_hu, rng)
    return hu, labels
