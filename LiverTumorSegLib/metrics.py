"""Segmentation metrics for liver and liver-tumor label maps, shared by tests, Training and benchmarks.

Conventions: arrays are indexed (z, y, x); spacing is (x, y, z) in mm; label maps hold 0 background,
1 liver, 2 tumor. "Liver" means label >= 1 (liver including its tumors), "tumor" means label == 2.

Empty masks: Dice and IoU of two empty masks are 1.0 (nothing to find, nothing found). A value that
is undefined is nan, never inf: surface distances when either mask is empty, the relative volume
difference when the reference is empty, slice sensitivity (specificity) without positive (negative)
reference slices. Summaries skip nans and report how many cases each mean is over.
"""
from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage

from .lesions import slices_with_tumor
from .result import LIVER, TUMOR

_FACE_NEIGHBOURS = ndimage.generate_binary_structure(3, 1)


def _check_same_shape(pred: np.ndarray, ref: np.ndarray) -> None:
    if pred.shape != ref.shape:
        raise ValueError(
            f"prediction and reference differ in shape: {pred.shape} vs {ref.shape} (z, y, x); "
            "they must be on the same voxel grid"
        )


def _overlap_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, or 1.0 when both masks (hence the denominator) are empty."""
    return float(numerator / denominator) if denominator > 0 else 1.0


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice 2|P∩R| / (|P|+|R|) of two boolean masks of any shape; 1.0 when both are empty."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    _check_same_shape(pred, ref)
    return _overlap_ratio(2.0 * np.count_nonzero(pred & ref), np.count_nonzero(pred) + np.count_nonzero(ref))


def iou(pred: np.ndarray, ref: np.ndarray) -> float:
    """Intersection over union (Jaccard) of two boolean masks of any shape; 1.0 when both are empty."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    _check_same_shape(pred, ref)
    return _overlap_ratio(np.count_nonzero(pred & ref), np.count_nonzero(pred | ref))


def relative_volume_difference(pred: np.ndarray, ref: np.ndarray) -> float:
    """Signed (V_pred - V_ref) / V_ref of two boolean masks (voxel counts); nan when the reference is empty."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    _check_same_shape(pred, ref)
    return _rvd(np.count_nonzero(pred), np.count_nonzero(ref))


def _rvd(n_pred: int, n_ref: int) -> float:
    return float((n_pred - n_ref) / n_ref) if n_ref else float("nan")


def _union_box(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...]:
    """Slices of the bounding box of the non-zero voxels of a or b (some must exist), from axis projections."""
    box = []
    for axis in range(a.ndim):
        others = tuple(d for d in range(a.ndim) if d != axis)
        hit = np.flatnonzero(a.any(axis=others) | b.any(axis=others))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of `mask` with at least one face neighbour outside it (the mask must not touch the array edge)."""
    return mask & ~ndimage.binary_erosion(mask, _FACE_NEIGHBOURS)


def surface_distances_mm(
    pred: np.ndarray, ref: np.ndarray, spacing_xyz: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Directed distances in mm, pred surface -> ref surface and ref -> pred, of (z, y, x) boolean masks.

    Surface voxels are mask voxels with a face neighbour outside the mask; distances are voxel centre
    to voxel centre with anisotropic `spacing_xyz` (x, y, z mm). Only the union bounding box plus one
    voxel is transformed, which keeps 512x512x200 volumes cheap. None when either mask is empty.
    """
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    _check_same_shape(pred, ref)
    if not pred.any() or not ref.any():
        return None
    crop = _union_box(pred, ref)
    p_surf = _surface(np.pad(pred[crop], 1))
    r_surf = _surface(np.pad(ref[crop], 1))
    sampling_zyx = np.array(spacing_xyz, dtype=float)[::-1]
    return _nearest_distances(p_surf, r_surf, sampling_zyx), _nearest_distances(r_surf, p_surf, sampling_zyx)


def _nearest_distances(source: np.ndarray, target: np.ndarray, sampling_zyx: np.ndarray) -> np.ndarray:
    """Distance in mm from each `source` voxel to the nearest `target` voxel (target non-empty).

    Uses the feature transform (nearest target index per voxel, int32) instead of the distance map,
    which halves peak memory; distances are then computed only at the source voxels.
    """
    nearest = ndimage.distance_transform_edt(
        ~target, sampling=sampling_zyx, return_distances=False, return_indices=True
    )
    points = np.nonzero(source)
    offsets_mm = (nearest[(slice(None), *points)] - np.array(points)) * sampling_zyx[:, None]
    return np.sqrt(np.sum(offsets_mm**2, axis=0))


def assd_mm(pred: np.ndarray, ref: np.ndarray, spacing_xyz: tuple[float, float, float]) -> float:
    """Average symmetric surface distance (mm) of (z, y, x) boolean masks, spacing (x, y, z) mm; nan if one is empty."""
    return _assd(surface_distances_mm(pred, ref, spacing_xyz))


def hd95_mm(pred: np.ndarray, ref: np.ndarray, spacing_xyz: tuple[float, float, float]) -> float:
    """95th-percentile Hausdorff distance (mm) of (z, y, x) boolean masks, spacing (x, y, z) mm; nan if one is empty.

    The larger of the two directed 95th percentiles (numpy's linear interpolation), as in MONAI and
    DeepMind's surface-distance package.
    """
    return _hd95(surface_distances_mm(pred, ref, spacing_xyz))


def _assd(distances: tuple[np.ndarray, np.ndarray] | None) -> float:
    if distances is None:
        return float("nan")
    to_ref, to_pred = distances
    return float((to_ref.sum() + to_pred.sum()) / (to_ref.size + to_pred.size))


def _hd95(distances: tuple[np.ndarray, np.ndarray] | None) -> float:
    if distances is None:
        return float("nan")
    return float(max(np.percentile(d, 95) for d in distances))


def _count_ratio(hits: int, misses: int, other_side_misses: int) -> float:
    """hits / (hits + misses); when nothing was counted, 1.0 if the other side missed nothing too, else 0.0."""
    if hits + misses:
        return hits / (hits + misses)
    return 1.0 if other_side_misses == 0 else 0.0


@dataclass(frozen=True)
class LesionDetection:
    """Lesion-wise detection counts and scores (26-connected tumor components)."""

    tp: int  # reference lesions detected
    fp: int  # predicted components that match no reference lesion
    fn: int  # reference lesions not detected
    n_pred: int
    n_ref: int

    @property
    def precision(self) -> float:
        """TP / (TP + FP); with no predicted lesion: 1.0 if there is no reference lesion either, else 0.0."""
        return _count_ratio(self.tp, self.fp, self.fn)

    @property
    def recall(self) -> float:
        """TP / (TP + FN); with no reference lesion: 1.0 if nothing was predicted either, else 0.0."""
        return _count_ratio(self.tp, self.fn, self.fp)

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN); 1.0 when there are neither predicted nor reference lesions."""
        return _overlap_ratio(2.0 * self.tp, 2 * self.tp + self.fp + self.fn)


def lesion_detection(pred: np.ndarray, ref: np.ndarray, min_iou: float = 0.0) -> LesionDetection:
    """Lesion-wise TP/FP/FN of (z, y, x) boolean tumor masks, lesions being 26-connected components.

    A predicted and a reference lesion match when they overlap and their IoU is >= `min_iou` (0: any
    overlap). A reference lesion is detected (TP) when it matches any predicted lesion, so a lesion
    split in two predictions counts once and two lesions merged into one prediction count twice; a
    predicted lesion matching no reference lesion is a FP.
    """
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    _check_same_shape(pred, ref)
    if pred.any() or ref.any():
        crop = _union_box(pred, ref)
        pred, ref = pred[crop], ref[crop]
    pred_cc, n_pred = cc3d.connected_components(pred, connectivity=26, return_N=True)
    ref_cc, n_ref = cc3d.connected_components(ref, connectivity=26, return_N=True)
    both = pred & ref
    pairs = ref_cc[both].astype(np.int64) * (n_pred + 1) + pred_cc[both].astype(np.int64)
    keys, inter = np.unique(pairs, return_counts=True)
    r, p = np.divmod(keys, n_pred + 1)
    ref_size = np.bincount(ref_cc.ravel(), minlength=n_ref + 1)
    pred_size = np.bincount(pred_cc.ravel(), minlength=n_pred + 1)
    match = inter / (ref_size[r] + pred_size[p] - inter) >= min_iou
    tp = np.unique(r[match]).size
    matched_pred = np.unique(p[match]).size
    return LesionDetection(tp=tp, fp=n_pred - matched_pred, fn=n_ref - tp, n_pred=n_pred, n_ref=n_ref)


@dataclass(frozen=True)
class SliceClassification:
    """Per-axial-slice "tumor present" (Tumor) vs. "no tumor" (Sane) agreement."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def accuracy(self) -> float:
        """(TP + TN) / slices; nan when no slice was scored."""
        n = self.tp + self.fp + self.tn + self.fn
        return (self.tp + self.tn) / n if n else float("nan")

    @property
    def sensitivity(self) -> float:
        """TP / (TP + FN); nan without reference tumor slices."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def specificity(self) -> float:
        """TN / (TN + FP); nan without reference tumor-free slices."""
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else float("nan")


def slice_classification(
    pred_labels: np.ndarray, ref_labels: np.ndarray, liver_slices_only: bool = True
) -> SliceClassification:
    """Classify each axial (z) slice of two (z, y, x) label maps (0/1/2) as Tumor (any label 2) or Sane.

    With `liver_slices_only` (the seed reports' setting) only slices where the reference or the
    prediction holds liver (label >= 1) are scored, so the many slices above and below the liver do not
    inflate specificity; a predicted tumor is always on such a slice, so no false positive is dropped.
    """
    _check_same_shape(pred_labels, ref_labels)
    pred_tumor, ref_tumor = slices_with_tumor(pred_labels), slices_with_tumor(ref_labels)
    if liver_slices_only:
        scored = (pred_labels >= LIVER).any(axis=(1, 2)) | (ref_labels >= LIVER).any(axis=(1, 2))
        pred_tumor, ref_tumor = pred_tumor[scored], ref_tumor[scored]
    return SliceClassification(
        tp=int(np.sum(pred_tumor & ref_tumor)),
        fp=int(np.sum(pred_tumor & ~ref_tumor)),
        tn=int(np.sum(~pred_tumor & ~ref_tumor)),
        fn=int(np.sum(~pred_tumor & ref_tumor)),
    )


class GlobalDice:
    """LiTS "Dice global": 2 * sum of intersections / sum of mask sizes (voxels) over all cases added."""

    def __init__(self) -> None:
        self.intersection = 0
        self.size_sum = 0

    def add_counts(self, intersection: int, pred_size: int, ref_size: int) -> None:
        """Add one case from its voxel counts |P∩R|, |P| and |R|."""
        self.intersection += int(intersection)
        self.size_sum += int(pred_size) + int(ref_size)

    def add(self, pred: np.ndarray, ref: np.ndarray) -> None:
        """Add one case from two boolean masks of the same shape (any axis order)."""
        pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
        _check_same_shape(pred, ref)
        self.add_counts(np.count_nonzero(pred & ref), np.count_nonzero(pred), np.count_nonzero(ref))

    @property
    def value(self) -> float:
        """The global Dice; 1.0 when every mask added was empty (or nothing was added)."""
        return _overlap_ratio(2.0 * self.intersection, self.size_sum)


def _structure_metrics(
    name: str, pred: np.ndarray, ref: np.ndarray, spacing_xyz: tuple[float, float, float], voxel_ml: float
) -> dict[str, float]:
    """Overlap, distance, volume and voxel-count metrics of one structure, keys prefixed with `name`."""
    n_pred, n_ref, n_both = (int(np.count_nonzero(m)) for m in (pred, ref, pred & ref))
    distances = surface_distances_mm(pred, ref, spacing_xyz)
    return {
        f"{name}_dice": _overlap_ratio(2.0 * n_both, n_pred + n_ref),
        f"{name}_iou": _overlap_ratio(n_both, n_pred + n_ref - n_both),
        f"{name}_assd_mm": _assd(distances),
        f"{name}_hd95_mm": _hd95(distances),
        f"{name}_rvd": _rvd(n_pred, n_ref),
        f"{name}_volume_pred_ml": n_pred * voxel_ml,
        f"{name}_volume_ref_ml": n_ref * voxel_ml,
        f"{name}_pred_voxels": n_pred,
        f"{name}_ref_voxels": n_ref,
        f"{name}_intersection_voxels": n_both,
    }


def evaluate_case(
    pred_labels: np.ndarray, ref_labels: np.ndarray, spacing_xyz: tuple[float, float, float]
) -> dict[str, float]:
    """All metrics of one case from (z, y, x) label maps (0/1/2) on the same grid, spacing (x, y, z) mm.

    Liver is label >= 1 (tumors included), tumor is label == 2. Volumes are in ml, distances in mm;
    voxel counts are included so that `GlobalDice` can be rebuilt from the rows. Raises ValueError
    when the shapes differ.
    """
    pred_labels, ref_labels = np.asarray(pred_labels), np.asarray(ref_labels)
    _check_same_shape(pred_labels, ref_labels)
    if pred_labels.ndim != 3:
        raise ValueError(f"label maps must be 3-D (z, y, x), got shape {pred_labels.shape}")
    if pred_labels.any() or ref_labels.any():  # every metric ignores slabs where both are background
        crop = _union_box(pred_labels, ref_labels)
        pred_labels, ref_labels = pred_labels[crop], ref_labels[crop]
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    pred_tumor, ref_tumor = pred_labels == TUMOR, ref_labels == TUMOR
    row = _structure_metrics("liver", pred_labels >= LIVER, ref_labels >= LIVER, spacing_xyz, voxel_ml)
    row.update(_structure_metrics("tumor", pred_tumor, ref_tumor, spacing_xyz, voxel_ml))
    lesions = lesion_detection(pred_tumor, ref_tumor)
    slices = slice_classification(pred_labels, ref_labels)
    row.update(
        lesions_pred=lesions.n_pred, lesions_ref=lesions.n_ref,
        lesion_tp=lesions.tp, lesion_fp=lesions.fp, lesion_fn=lesions.fn,
        lesion_precision=lesions.precision, lesion_recall=lesions.recall, lesion_f1=lesions.f1,
        slice_accuracy=slices.accuracy, slice_sensitivity=slices.sensitivity,
        slice_specificity=slices.specificity,
    )
    return row
