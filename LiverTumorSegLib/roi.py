"""Region of interest: a mask's bounding box grown by a margin in mm, mapped between grids."""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Box:
    """An index box on an image: `start` and `stop` (exclusive) in (x, y, z) voxel indices."""

    start: tuple[int, int, int]
    stop: tuple[int, int, int]

    @property
    def size(self) -> tuple[int, int, int]:
        """Box size (x, y, z) in voxels."""
        return tuple(int(b - a) for a, b in zip(self.start, self.stop))  # type: ignore[return-value]

    def slices_zyx(self) -> tuple[slice, slice, slice]:
        """Numpy slices selecting the box from a (z, y, x) array."""
        return tuple(slice(self.start[d], self.stop[d]) for d in (2, 1, 0))  # type: ignore[return-value]

    def crop(self, image: sitk.Image) -> sitk.Image:
        """The box cut out of `image`, keeping its physical position."""
        return sitk.RegionOfInterest(image, list(self.size), list(self.start))


def mask_box(mask_zyx: np.ndarray) -> Box | None:
    """Tight bounding box of the non-zero voxels of a (z, y, x) mask, or None when empty."""
    nz = np.nonzero(mask_zyx)
    if len(nz[0]) == 0:
        return None
    lo = [int(a.min()) for a in nz]
    hi = [int(a.max()) + 1 for a in nz]
    return Box((lo[2], lo[1], lo[0]), (hi[2], hi[1], hi[0]))


def box_on_image(box: Box, source: sitk.Image, target: sitk.Image, margin_mm: float) -> Box:
    """`box` (indices on `source`) mapped to `target` indices, grown by `margin_mm`, clipped.

    The 8 physical corners of the box (voxel edges included) are mapped, so the result covers the
    box on any pair of grids, oblique or not.
    """
    corners = [
        source.TransformContinuousIndexToPhysicalPoint([c - 0.5 for c in corner])
        for corner in product(*[(box.start[d], box.stop[d]) for d in range(3)])
    ]
    idx = np.array([target.TransformPhysicalPointToContinuousIndex(p) for p in corners])
    grow = margin_mm / np.array(target.GetSpacing())
    lo = np.floor(idx.min(axis=0) + 0.5 - grow).astype(int)
    hi = np.ceil(idx.max(axis=0) + 0.5 + grow).astype(int)
    size = np.array(target.GetSize())
    lo = np.clip(lo, 0, size - 1)
    hi = np.clip(hi, lo + 1, size)
    return Box(tuple(lo.tolist()), tuple(hi.tolist()))


def paste(target_zyx: np.ndarray, patch_zyx: np.ndarray, box: Box) -> np.ndarray:
    """Write `patch_zyx` into `target_zyx` at `box` (in place) and return the target."""
    target_zyx[box.slices_zyx()] = patch_zyx
    return target_zyx
