"""Metrics: hand-worked overlaps, surface distances in mm, lesion and slice counting, real LiTS labels."""
from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree

from LiverTumorSegLib.metrics import (
    GlobalDice,
    assd_mm,
    dice,
    evaluate_case,
    hd95_mm,
    iou,
    lesion_detection,
    relative_volume_difference,
    slice_classification,
    surface_distances_mm,
)

ANISO_XYZ = (0.8, 0.6, 2.5)  # x, y, z mm


def cube(shape=(10, 10, 10), start=(0, 0, 0), size=(4, 4, 4)) -> np.ndarray:
    """A boolean (z, y, x) array with one box set; `start` and `size` are (z, y, x) voxels."""
    mask = np.zeros(shape, bool)
    mask[tuple(slice(s, s + n) for s, n in zip(start, size))] = True
    return mask


# --- overlap -----------------------------------------------------------------------------------------

def test_two_cubes_overlapping_by_half_have_dice_one_half_and_iou_one_third():
    a = cube(start=(0, 0, 0))
    b = cube(start=(0, 0, 2))  # 2 of 4 columns shared: |A∩B| = 32, |A| = |B| = 64
    assert dice(a, b) == 0.5
    assert iou(a, b) == pytest.approx(1 / 3)


def test_empty_masks_agree_perfectly_but_empty_against_non_empty_scores_zero():
    empty = np.zeros((5, 5, 5), bool)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert dice(empty, cube()[:5, :5, :5]) == 0.0 and iou(cube()[:5, :5, :5], empty) == 0.0


def test_relative_volume_difference_is_signed_and_undefined_without_reference():
    ref = cube(size=(5, 5, 4))  # 100 voxels
    assert relative_volume_difference(cube(size=(5, 4, 4)), ref) == pytest.approx(-0.2)
    assert relative_volume_difference(cube(size=(5, 6, 4)), ref) == pytest.approx(0.2)
    assert math.isnan(relative_volume_difference(ref, np.zeros_like(ref)))


def test_shape_mismatch_raises_a_clear_value_error():
    with pytest.raises(ValueError, match="differ in shape"):
        dice(np.zeros((3, 3, 3), bool), np.zeros((3, 3, 4), bool))
    with pytest.raises(ValueError, match=r"\(4, 5, 6\) vs \(4, 5, 7\)"):
        evaluate_case(np.zeros((4, 5, 6), np.uint8), np.zeros((4, 5, 7), np.uint8), (1.0, 1.0, 1.0))


# --- surface distances ---------------------------------------------------------------------------------

def test_plates_three_slices_apart_are_three_z_spacings_apart():
    # One-voxel-thick plates spanning the whole (y, x) plane: every voxel is surface and touches the
    # array edge; each one's nearest partner is straight across, 3 slices of 2.5 mm away.
    pred, ref = np.zeros((8, 6, 7), bool), np.zeros((8, 6, 7), bool)
    pred[2], ref[5] = True, True
    assert assd_mm(pred, ref, ANISO_XYZ) == pytest.approx(7.5)
    assert hd95_mm(pred, ref, ANISO_XYZ) == pytest.approx(7.5)


def test_spacing_is_read_as_x_y_z():
    pred, ref = np.zeros((4, 5, 9), bool), np.zeros((4, 5, 9), bool)
    pred[:, :, 1], ref[:, :, 4] = True, True  # plates 3 columns apart along x (0.8 mm)
    assert assd_mm(pred, ref, ANISO_XYZ) == pytest.approx(2.4)
    assert hd95_mm(pred, ref, ANISO_XYZ) == pytest.approx(2.4)


def test_hd95_by_hand_ignores_one_outlier_and_interpolates_two():
    # ref: a line of 20 voxels (all surface). pred: the same line plus outliers 4 slices (10 mm) above.
    ref = np.zeros((6, 3, 20), bool)
    ref[0, 1, :] = True
    one = ref.copy()
    one[4, 1, 0] = True
    # pred -> ref distances: 20 zeros and one 10: the 95th percentile (rank 0.95 * 20 = 19) is 0.
    assert hd95_mm(one, ref, ANISO_XYZ) == 0.0
    assert assd_mm(one, ref, ANISO_XYZ) == pytest.approx(10 / 41)
    two = one.copy()
    two[4, 1, 19] = True
    # 20 zeros and two 10s: rank 0.95 * 21 = 19.95 lies 95 % of the way from 0 to 10.
    assert hd95_mm(two, ref, ANISO_XYZ) == pytest.approx(9.5)
    assert assd_mm(two, ref, ANISO_XYZ) == pytest.approx(20 / 42)


def _sphere(shape_zyx, centre_xyz_mm, radius_mm, spacing_xyz):
    z, y, x = np.indices(shape_zyx)
    coords = (x * spacing_xyz[0], y * spacing_xyz[1], z * spacing_xyz[2])
    return sum((c - m) ** 2 for c, m in zip(coords, centre_xyz_mm)) <= radius_mm**2


def _brute_force_distances(pred, ref, spacing_xyz):
    """Nearest-neighbour distances between face-surface voxel centres, by k-d tree (independent check)."""
    def points_mm(mask):
        surface = mask & ~ndimage.binary_erosion(mask, border_value=0)
        return np.argwhere(surface) * np.array(spacing_xyz[::-1])
    p, r = points_mm(pred), points_mm(ref)
    return cKDTree(r).query(p)[0], cKDTree(p).query(r)[0]


def test_sphere_shifted_two_slices_along_the_coarse_axis():
    spacing = (1.0, 1.0, 2.5)
    ref = _sphere((24, 40, 40), (20.0, 20.0, 25.0), 15.0, spacing)
    pred = np.roll(ref, 2, axis=0)  # 2 slices = 5 mm along z
    # The farthest points of two spheres shifted by d are exactly d apart (the poles).
    assert hd95_mm(pred, ref, spacing) == pytest.approx(5.0)
    # Continuous spheres: mean distance ~ d/2 = 2.5 mm; voxelisation adds a little.
    assert assd_mm(pred, ref, spacing) == pytest.approx(2.5, abs=0.5)
    to_ref, to_pred = surface_distances_mm(pred, ref, spacing)
    brute_to_ref, brute_to_pred = _brute_force_distances(pred, ref, spacing)
    np.testing.assert_allclose(np.sort(to_ref), np.sort(brute_to_ref))
    np.testing.assert_allclose(np.sort(to_pred), np.sort(brute_to_pred))


def test_surface_distances_are_nan_when_either_mask_is_empty():
    empty, full = np.zeros((6, 6, 6), bool), cube((6, 6, 6), (1, 1, 1), (3, 3, 3))
    for pred, ref in ((empty, full), (full, empty), (empty, empty)):
        assert math.isnan(assd_mm(pred, ref, ANISO_XYZ)) and math.isnan(hd95_mm(pred, ref, ANISO_XYZ))


def test_identical_masks_are_zero_mm_apart():
    mask = _sphere((20, 20, 20), (10.0, 10.0, 10.0), 6.0, (1.0, 1.0, 1.0))
    assert assd_mm(mask, mask, ANISO_XYZ) == 0.0 and hd95_mm(mask, mask, ANISO_XYZ) == 0.0


# --- lesions -------------------------------------------------------------------------------------------

def test_a_lesion_split_in_two_predictions_is_one_detection_without_false_positives():
    ref = cube((5, 5, 20), (1, 1, 2), (3, 3, 12))
    pred = ref.copy()
    pred[:, :, 8] = False  # cut in two
    found = lesion_detection(pred, ref)
    assert (found.n_ref, found.n_pred, found.tp, found.fp, found.fn) == (1, 2, 1, 0, 0)
    assert found.precision == found.recall == found.f1 == 1.0


def test_two_lesions_merged_into_one_prediction_are_both_detected():
    ref = cube((5, 5, 20), (1, 1, 2), (3, 3, 5)) | cube((5, 5, 20), (1, 1, 9), (3, 3, 5))
    pred = cube((5, 5, 20), (1, 1, 2), (3, 3, 12))  # bridges the gap
    found = lesion_detection(pred, ref)
    assert (found.n_ref, found.n_pred, found.tp, found.fp, found.fn) == (2, 1, 2, 0, 0)


def test_a_missed_lesion_and_a_stray_prediction_give_zero_precision_and_recall():
    ref = cube((5, 20, 20), (1, 1, 1), (3, 3, 3))
    pred = cube((5, 20, 20), (1, 10, 10), (3, 3, 3))
    found = lesion_detection(pred, ref)
    assert (found.tp, found.fp, found.fn) == (0, 1, 1)
    assert found.precision == found.recall == found.f1 == 0.0


def test_lesions_touching_at_a_corner_are_one_lesion_26_connectivity():
    ref = np.zeros((4, 4, 4), bool)
    ref[1, 1, 1] = ref[2, 2, 2] = True
    assert lesion_detection(ref, ref).n_ref == 1


def test_iou_threshold_turns_a_small_overlap_into_a_miss_and_a_false_positive():
    ref = cube((6, 6, 12), (1, 1, 1), (4, 4, 8))  # 128 voxels
    pred = cube((6, 6, 12), (1, 1, 1), (4, 4, 2))  # 32 voxels inside it: IoU 0.25
    assert lesion_detection(pred, ref).tp == 1
    strict = lesion_detection(pred, ref, min_iou=0.5)
    assert (strict.tp, strict.fp, strict.fn) == (0, 1, 1)
    assert lesion_detection(pred, ref, min_iou=0.25).tp == 1


def test_lesion_scores_of_empty_cases():
    empty, lesion = np.zeros((5, 5, 5), bool), cube((5, 5, 5), (1, 1, 1), (2, 2, 2))
    none = lesion_detection(empty, empty)
    assert (none.precision, none.recall, none.f1) == (1.0, 1.0, 1.0)
    stray = lesion_detection(lesion, empty)
    assert (stray.precision, stray.recall, stray.f1) == (0.0, 0.0, 0.0)
    missed = lesion_detection(empty, lesion)
    assert (missed.precision, missed.recall, missed.f1) == (0.0, 0.0, 0.0)


# --- slices and global Dice ----------------------------------------------------------------------------

def test_slice_classification_counts_tumor_slices_within_the_liver():
    pred, ref = np.zeros((6, 4, 4), np.uint8), np.zeros((6, 4, 4), np.uint8)
    # slice 0: no liver anywhere (not scored unless asked)
    pred[1], ref[1] = 1, 1                     # TN
    pred[2], ref[2] = 2, 2                     # TP
    pred[3], ref[3, 0, 0] = 2, 1               # FP
    pred[4, 0, 0], ref[4, 1, 1] = 1, 2         # FN
    ref[5] = 1                                 # TN (liver in the reference only)
    found = slice_classification(pred, ref)
    assert (found.tp, found.fp, found.tn, found.fn) == (1, 1, 2, 1)
    assert (found.accuracy, found.sensitivity, found.specificity) == pytest.approx((3 / 5, 1 / 2, 2 / 3))
    every = slice_classification(pred, ref, liver_slices_only=False)
    assert (every.tn, every.accuracy, every.specificity) == pytest.approx((3, 4 / 6, 3 / 4))


def test_slice_sensitivity_is_undefined_without_tumor():
    liver = np.ones((3, 4, 4), np.uint8)
    found = slice_classification(liver, liver)
    assert math.isnan(found.sensitivity) and found.specificity == 1.0 and found.accuracy == 1.0


def test_global_dice_sums_over_cases_instead_of_averaging():
    total = GlobalDice()
    assert total.value == 1.0
    ref1 = cube((4, 4, 10), (0, 0, 0), (1, 2, 10))  # 20 voxels
    pred1 = cube((4, 4, 10), (0, 0, 0), (1, 1, 10))  # 10 voxels, all inside: Dice 2/3
    ref2 = cube((4, 4, 10), (3, 3, 0), (1, 1, 5))  # 5 voxels
    pred2 = cube((4, 4, 10), (3, 3, 5), (1, 1, 5))  # 5 other voxels: Dice 0
    total.add(pred1, ref1)
    total.add(pred2, ref2)
    assert total.value == pytest.approx(2 * 10 / (10 + 20 + 5 + 5))  # 0.5, not the mean 1/3


# --- whole cases ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lits_labels(shared_data) -> tuple[np.ndarray, tuple[float, float, float]]:
    image = sitk.ReadImage(str(shared_data / "lits117_roi" / "label.nii.gz"))
    return sitk.GetArrayFromImage(image), image.GetSpacing()


def test_real_lits_labels_against_themselves_are_perfect(lits_labels):
    labels, spacing = lits_labels
    row = evaluate_case(labels, labels, spacing)
    for key in ("liver_dice", "liver_iou", "tumor_dice", "tumor_iou", "lesion_precision", "lesion_recall",
                "lesion_f1", "slice_accuracy", "slice_sensitivity"):
        assert row[key] == 1.0, key
    for key in ("liver_assd_mm", "liver_hd95_mm", "liver_rvd", "tumor_assd_mm", "tumor_hd95_mm", "tumor_rvd"):
        assert row[key] == 0.0, key
    voxel_ml = np.prod(spacing) / 1000
    assert row["liver_volume_ref_ml"] == pytest.approx(np.count_nonzero(labels >= 1) * voxel_ml)
    assert row["tumor_volume_pred_ml"] == pytest.approx(np.count_nonzero(labels == 2) * voxel_ml)
    assert row["lesions_ref"] > 1  # several lesions


def test_real_lits_labels_against_an_eroded_copy_lose_overlap_and_gain_distance(lits_labels):
    labels, spacing = lits_labels
    liver = ndimage.binary_erosion(labels >= 1)
    tumor = ndimage.binary_erosion(labels == 2)
    eroded = np.where(tumor, 2, np.where(liver, 1, 0)).astype(np.uint8)
    row = evaluate_case(eroded, labels, spacing)
    assert 0.9 < row["liver_dice"] < 1.0 and 0.0 < row["tumor_dice"] < 1.0
    assert row["liver_assd_mm"] > 0.0 and row["tumor_hd95_mm"] > 0.0
    assert row["liver_rvd"] < 0.0 and row["tumor_volume_pred_ml"] < row["tumor_volume_ref_ml"]
    assert row["lesion_fn"] > 0 and row["lesion_fp"] == 0  # small lesions erode away


def test_case_metrics_do_not_depend_on_background_around_the_labels():
    ref = np.zeros((12, 14, 16), np.uint8)
    ref[2:10, 3:11, 4:13] = 1
    ref[4:7, 5:8, 6:9] = 2
    pred = np.roll(ref, 1, axis=2)
    pred[8, 9, 10] = 2  # a stray one-voxel lesion
    padded = [np.pad(a, ((5, 3), (0, 7), (2, 2))) for a in (pred, ref)]
    small, large = evaluate_case(pred, ref, ANISO_XYZ), evaluate_case(*padded, ANISO_XYZ)
    assert small.keys() == large.keys()
    for key, value in small.items():
        assert value == pytest.approx(large[key], nan_ok=True), key
    assert small["lesion_fp"] == 1 and small["lesion_precision"] == 0.5


def test_empty_case_has_perfect_overlap_and_undefined_distances():
    empty = np.zeros((3, 4, 5), np.uint8)
    row = evaluate_case(empty, empty, ANISO_XYZ)
    assert row["liver_dice"] == row["tumor_dice"] == row["lesion_f1"] == 1.0
    assert all(math.isnan(row[k]) for k in ("liver_assd_mm", "tumor_hd95_mm", "liver_rvd", "slice_accuracy"))
