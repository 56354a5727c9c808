"""Baseline / follow-up pairs with known truth built from a real CT and its expert labels (lits117_roi):
the same CT moved and resampled, a lesion painted over with liver, lesions grown, shrunk, cut in two, a new one."""
from __future__ import annotations

from pathlib import Path

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

LIVER, TUMOR = 1, 2


def load(folder: Path) -> tuple[sitk.Image, sitk.Image]:
    """(CT as float32 HU, uint8 labels) of a shared-data case folder."""
    return sitk.Cast(sitk.ReadImage(str(folder / "ct.nii.gz")), sitk.sitkFloat32), sitk.ReadImage(str(folder / "label.nii.gz"))


def moved(ct: sitk.Image, labels: sitk.Image, angles=(0.05, -0.04, 0.14), shift=(6.0, -4.0, 3.0),
          spacing=(1.2, 1.2, 1.3)) -> tuple[sitk.Image, sitk.Image]:
    """The same CT and labels rotated (radians about x, y, z), shifted (mm) and resampled onto a coarser grid."""
    t = move_transform(ct, angles, shift)
    size = [int(round(n * s0 / s1 * 1.1)) for n, s0, s1 in zip(ct.GetSize(), ct.GetSpacing(), spacing)]
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing(spacing)
    grid.SetDirection(ct.GetDirection())
    grid.SetOrigin(ct.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 - (m - 1) / 2 * s1 / s0 for n, m, s0, s1
                                                               in zip(ct.GetSize(), size, ct.GetSpacing(), spacing)]))
    return (sitk.Resample(ct, grid, t, sitk.sitkLinear, -1000.0, sitk.sitkFloat32),
            sitk.Resample(labels, grid, t, sitk.sitkNearestNeighbor, 0, labels.GetPixelID()))


def move_transform(ct: sitk.Image, angles=(0.05, -0.04, 0.14), shift=(6.0, -4.0, 3.0)) -> sitk.Euler3DTransform:
    """The rigid move of `moved`: maps a follow-up point to the baseline point it shows (about the CT's centre)."""
    centre = ct.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in ct.GetSize()])
    return sitk.Euler3DTransform(centre, *angles, shift)


def lesion_ids(labels: np.ndarray) -> np.ndarray:
    """26-connected tumor components numbered largest first, as the library numbers lesions."""
    comps = cc3d.connected_components((labels == TUMOR).astype(np.uint8), connectivity=26)
    counts = np.bincount(comps.ravel())[1:]
    rank = np.zeros(len(counts) + 1, np.int64)
    rank[np.argsort(-counts, kind="stable") + 1] = np.arange(1, len(counts) + 1)
    return rank[comps]


def _liver_hu(hu: np.ndarray, labels: np.ndarray) -> float:
    """Median HU of tumor-free liver."""
    return float(np.median(hu[labels == LIVER]))


def set_region(hu: np.ndarray, labels: np.ndarray, region: np.ndarray, label: int, value_hu: float,
               rng: np.random.Generator) -> None:
    """Paint `region` (in place) with `label` and `value_hu` plus 10 HU noise."""
    labels[region] = label
    hu[region] = value_hu + rng.normal(0, 10, int(region.sum()))


def edit(ct: sitk.Image, labels: sitk.Image, changes: dict[int, str], new_tumor_mm: float = 0.0,
         seed: int = 0) -> tuple[sitk.Image, sitk.Image, dict[int, int]]:
    """A follow-up made from the baseline: per lesion id "gone" | "grow" | "shrink" | "cut"; and a new tumor of that
    radius (mm) if > 0. Returns (CT, labels, {lesion id: tumor voxels after}) on the baseline's grid."""
    rng = np.random.default_rng(seed)
    hu, lab = sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(labels)
    ids, liver_hu = lesion_ids(lab), _liver_hu(hu, lab)
    ball = ndimage.generate_binary_structure(3, 1)
    for lesion, how in changes.items():
        mask = ids == lesion
        tumor_hu = float(np.median(hu[mask]))
        if how == "gone":
            set_region(hu, lab, mask, LIVER, liver_hu, rng)
        elif how == "grow":
            ring = ndimage.binary_dilation(mask, ball, iterations=2) & (lab == LIVER)
            set_region(hu, lab, ring, TUMOR, tumor_hu, rng)
        elif how == "shrink":
            set_region(hu, lab, mask & ~ndimage.binary_erosion(mask, ball, iterations=2), LIVER, liver_hu, rng)
        elif how == "cut":  # a 4-voxel liver slab through the lesion's centre, across z
            z = int(np.argwhere(mask)[:, 0].mean())
            slab = mask.copy()
            slab[: z - 2] = slab[z + 2:] = False
            set_region(hu, lab, slab, LIVER, liver_hu, rng)
    if new_tumor_mm:
        _insert_new(hu, lab, new_tumor_mm, rng)
    after = {lesion: int(np.count_nonzero((lab == TUMOR) & ndimage.binary_dilation(ids == lesion, ball, iterations=2)))
             for lesion in changes}
    out_ct, out_lab = sitk.GetImageFromArray(hu), sitk.GetImageFromArray(lab)
    out_ct.CopyInformation(ct)
    out_lab.CopyInformation(labels)
    return out_ct, out_lab, after


def _insert_new(hu: np.ndarray, lab: np.ndarray, radius_mm: float, rng: np.random.Generator) -> None:
    """One synthetic tumor (Training.synthetic_tumors) in the liver voxel farthest from any tumor and the liver edge."""
    from Training.synthetic_tumors import insert_one

    room = ndimage.distance_transform_edt(lab == LIVER)
    centre = np.unravel_index(int(np.argmax(room)), lab.shape)
    insert_one(hu, lab, np.ones(3), np.array(centre), radius_mm, contrast_hu=60.0, texture_hu=10.0, rng=rng)


def write_painted_over_pair(case_folder: Path, out: Path, suffix: str = ".nii.gz") -> dict[str, Path]:
    """Baseline (the case) and a follow-up with lesion 3 painted over, moved and resampled, written as CT and labels:
    paths keyed baseline, baseline_labels, followup, followup_labels."""
    ct, labels = load(case_folder)
    f_ct, f_labels = moved(*edit(ct, labels, {3: "gone"})[:2])
    paths = {}
    for name, image in (("baseline", ct), ("baseline_labels", labels), ("followup", f_ct), ("followup_labels", f_labels)):
        paths[name] = out / f"{name}{suffix}"
        sitk.WriteImage(image, str(paths[name]))
    return paths
