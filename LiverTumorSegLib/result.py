"""What a segmentation returns: the label map on the input grid plus lesion measurements."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk

from .geometry import Geometry

BACKGROUND, LIVER, TUMOR = 0, 1, 2
LABEL_NAMES = {LIVER: "Liver", TUMOR: "Liver tumor"}


@dataclass(frozen=True)
class Lesion:
    """One connected tumor component (26-connectivity)."""

    id: int
    volume_ml: float
    longest_axial_diameter_mm: float  # RECIST-style: longest in-plane extent on any axial slice
    centroid_lps: tuple[float, float, float]
    centroid_ras: tuple[float, float, float]
    mean_hu: float
    voxels: int

    def row(self) -> dict:
        """Flat dict for CSV/JSON/table output."""
        d = asdict(self)
        for key in ("centroid_lps", "centroid_ras"):
            for axis, value in zip(key[-3:].upper(), d.pop(key)):
                d[f"{key[:-4]}_{axis}_{key[-3:]}"] = round(value, 2)
        return d


def lesion_columns() -> list[str]:
    """Column names of a lesion table (CSV, JSON rows, the Slicer table), in order: the keys of Lesion.row()."""
    return list(Lesion(0, 0.0, 0.0, (0.0,) * 3, (0.0,) * 3, 0.0, 0).row())


@dataclass
class SegmentationResult:
    """Label map (z, y, x) uint8 on the input grid: 0 background, 1 liver, 2 tumor; plus findings."""

    labels: np.ndarray
    geometry: Geometry
    lesions: list[Lesion] = field(default_factory=list)
    liver_volume_ml: float = 0.0  # liver including tumors
    tumor_volume_ml: float = 0.0
    slice_has_tumor: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # per axial (z) slice
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    warnings: list[str] = field(default_factory=list)
    device: str = "cpu"
    model_set: str = ""  # name of the model set that ran
    models: dict[str, dict[str, str]] = field(default_factory=dict)  # per stage: manifest name, version, model set
    modality: str = "ct"  # what the image was segmented as: "ct" or "mr"

    @property
    def tumor_burden_percent(self) -> float:
        """Tumor volume as a percentage of the liver volume (tumors included); 0 without liver."""
        return 100.0 * self.tumor_volume_ml / self.liver_volume_ml if self.liver_volume_ml > 0 else 0.0

    def label_image(self) -> sitk.Image:
        """The label map as a SimpleITK image with the input geometry."""
        return self.geometry.apply_to(sitk.GetImageFromArray(self.labels))

    def slice_classes(self) -> list[str]:
        """Per axial slice (z index of `labels`): "Tumor" where any tumor voxel lies, else "Sane"."""
        return ["Tumor" if flag else "Sane" for flag in self.slice_has_tumor]

    def tumor_slice_ranges(self) -> list[list[int]]:
        """Runs of consecutive "Tumor" slices as [first, last] z indices (inclusive)."""
        z = np.flatnonzero(self.slice_has_tumor)
        breaks = np.flatnonzero(np.diff(z) > 1)
        return [[int(z[a]), int(z[b])] for a, b in zip(np.r_[0, breaks + 1], np.r_[breaks, len(z) - 1])] if len(z) else []

    def liver_cut_off(self) -> list[str]:
        """Image borders the liver (labels > 0, (z, y, x)) touches: "first slice", "last slice", "in-plane edge".

        A liver that touches one may run off the scan: its volume is then a lower bound.
        """
        liver = self.labels > 0
        if liver.ndim != 3 or not liver.any():
            return []
        edges = {"first slice": liver[0].any(), "last slice": liver[-1].any(),
                 "in-plane edge": liver[:, [0, -1], :].any() or liver[:, :, [0, -1]].any()}
        return [name for name, touched in edges.items() if touched]

    def summary(self) -> dict:
        """Headline numbers for a terminal or report."""
        return {
            "liver_volume_ml": round(self.liver_volume_ml, 1),
            "liver_cut_off_at": self.liver_cut_off(),  # non-empty: the liver volume is a lower bound
            "tumor_volume_ml": round(self.tumor_volume_ml, 2),
            "tumor_burden_percent": round(self.tumor_burden_percent, 2),
            "lesions": len(self.lesions),
            "slices_with_tumor": int(self.slice_has_tumor.sum()),
            "tumor_slice_ranges": self.tumor_slice_ranges(),
            "seconds": round(sum(self.timings.values()), 2),
            "device": self.device,
            "model_set": self.model_set,
            "modality": self.modality,
        }
