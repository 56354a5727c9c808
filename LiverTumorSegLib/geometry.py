"""Image geometry: a numpy volume with spacing, origin and direction, and conversions.

Conventions: arrays are indexed (z, y, x) = (k, j, i); spacing and origin are (x, y, z) in mm;
direction is the 3x3 matrix (row-major, 9 floats) whose columns are the i, j, k axes in LPS,
exactly as SimpleITK and ITK store it. Slicer's IJK->RAS matrix converts with `from_ijk_to_ras`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Geometry:
    """Where voxels sit in patient space (LPS, mm)."""

    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @classmethod
    def of(cls, image: sitk.Image) -> "Geometry":
        """Geometry of a 3-D SimpleITK image."""
        return cls(tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(image.GetDirection()))

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Stamp this geometry on `image` (in place) and return it."""
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def ijk_to_lps(self) -> np.ndarray:
        """4x4 matrix mapping (i, j, k, 1) voxel indices to LPS mm."""
        m = np.eye(4)
        m[:3, :3] = np.reshape(self.direction, (3, 3)) @ np.diag(self.spacing)
        m[:3, 3] = self.origin
        return m

    def ijk_to_ras(self) -> np.ndarray:
        """4x4 matrix mapping (i, j, k, 1) voxel indices to RAS mm (Slicer's convention)."""
        flip = np.eye(4)
        flip[:3, :3] = LPS_TO_RAS
        return flip @ self.ijk_to_lps()

    @classmethod
    def from_ijk_to_ras(cls, matrix: np.ndarray) -> "Geometry":
        """Geometry from a Slicer IJK->RAS 4x4 matrix (spacing = column norms)."""
        m = np.asarray(matrix, dtype=float)
        lps = LPS_TO_RAS @ m[:3, :3]
        spacing = np.linalg.norm(lps, axis=0)
        direction = lps / spacing
        origin = LPS_TO_RAS @ m[:3, 3]
        return cls(tuple(spacing.tolist()), tuple(origin.tolist()), tuple(direction.ravel().tolist()))


@dataclass
class Volume:
    """A 3-D scalar volume: `array` indexed (z, y, x) plus its `geometry`."""

    array: np.ndarray
    geometry: Geometry = field(default_factory=lambda: Geometry((1.0, 1.0, 1.0)))

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> "Volume":
        """Copy a SimpleITK image into a Volume."""
        return cls(sitk.GetArrayFromImage(image), Geometry.of(image))

    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image with this volume's voxels and geometry."""
        return self.geometry.apply_to(sitk.GetImageFromArray(self.array))

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """Array shape (z, y, x)."""
        return tuple(self.array.shape)  # type: ignore[return-value]


def same_grid(a: sitk.Image, b: sitk.Image, tol: float = 1e-5) -> bool:
    """True when both images share size, spacing, origin and direction (within `tol`)."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol)
    )
