"""Resampling between grids with SimpleITK (geometry-preserving, oblique-safe)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk


def grid_for_spacing(image: sitk.Image, spacing: Sequence[float]) -> sitk.Image:
    """An empty image covering the same physical extent as `image` at `spacing` (x, y, z) mm.

    Origin and direction stay those of `image`; the size is rounded so that the new grid covers
    the old field of view (at least one voxel per axis).
    """
    old_size = np.array(image.GetSize(), dtype=float)
    old_sp = np.array(image.GetSpacing(), dtype=float)
    new_sp = np.array(spacing, dtype=float)
    size = np.maximum(1, np.round(old_size * old_sp / new_sp)).astype(int)
    # Keep the field-of-view centre fixed: shift the origin by half the size difference.
    shift = (old_sp * (old_size - 1) - new_sp * (size - 1)) / 2.0
    direction = np.reshape(image.GetDirection(), (3, 3))
    origin = np.array(image.GetOrigin()) + direction @ shift
    ref = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    ref.SetSpacing(tuple(new_sp.tolist()))
    ref.SetOrigin(tuple(origin.tolist()))
    ref.SetDirection(image.GetDirection())
    return ref


def resample_like(
    image: sitk.Image,
    reference: sitk.Image,
    *,
    interpolator: int = sitk.sitkLinear,
    default: float = 0.0,
    pixel_type: int | None = None,
) -> sitk.Image:
    """`image` resampled onto the grid of `reference` (size, spacing, origin, direction)."""
    out_type = image.GetPixelID() if pixel_type is None else pixel_type
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, float(default), out_type)


def resample_to_spacing(
    image: sitk.Image, spacing: Sequence[float], *, interpolator: int = sitk.sitkLinear, default: float = 0.0
) -> sitk.Image:
    """`image` resampled to `spacing` (x, y, z) mm over the same field of view."""
    if np.allclose(image.GetSpacing(), spacing, rtol=1e-4):
        return image
    return resample_like(image, grid_for_spacing(image, spacing), interpolator=interpolator, default=default)


def resample_ct(image: sitk.Image, spacing: Sequence[float], background: float = -1024.0) -> sitk.Image:
    """CT in HU (or an MR) resampled to `spacing` as float32 (linear; outside the image is `background`, CT: air)."""
    img = sitk.Cast(image, sitk.sitkFloat32)
    return resample_to_spacing(img, spacing, interpolator=sitk.sitkLinear, default=background)


def resample_labels(labels: sitk.Image, spacing_or_reference: Sequence[float] | sitk.Image) -> sitk.Image:
    """A label map resampled with label-preserving interpolation (nearest neighbour)."""
    if isinstance(spacing_or_reference, sitk.Image):
        return resample_like(labels, spacing_or_reference, interpolator=sitk.sitkNearestNeighbor)
    return resample_to_spacing(labels, spacing_or_reference, interpolator=sitk.sitkNearestNeighbor)
