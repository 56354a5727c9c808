"""Post-processing and lesion measurements against hand-worked phantoms."""
import numpy as np
import pytest

from LiverTumorSegLib.geometry import Geometry
from LiverTumorSegLib.lesions import longest_axial_diameter_mm, measure_lesions, organ_volumes_ml, slices_with_tumor
from LiverTumorSegLib.postprocess import compose_labels, fill_holes, largest_component


def test_only_the_largest_liver_component_is_kept_and_its_holes_filled():
    fg = np.zeros((20, 20, 20), bool)
    fg[2:12, 2:12, 2:12] = True
    fg[5:8, 5:8, 5:8] = False  # cavity
    fg[15:18, 15:18, 15:18] = True  # stray blob
    out = fill_holes(largest_component(fg))
    assert out[6, 6, 6] and not out[16, 16, 16] and out.sum() == 1000


def test_tumors_outside_the_liver_and_specks_are_dropped():
    fg = np.zeros((20, 20, 20), bool); fg[2:14, 2:14, 2:14] = True
    tumor = np.zeros_like(fg)
    tumor[4:8, 4:8, 4:8] = True  # 64 voxels inside
    tumor[11, 11, 11] = True  # 1-voxel speck inside
    tumor[17:19, 17:19, 17:19] = True  # outside the liver
    labels = compose_labels(fg, tumor, voxel_mm3=1.0, min_lesion_mm3=10.0)
    assert (labels == 2).sum() == 64 and labels[11, 11, 11] == 1 and labels[18, 18, 18] == 0


def test_lesion_volume_diameter_centroid_and_hu_are_hand_checkable():
    g = Geometry((0.5, 0.5, 2.0), (100.0, 50.0, -20.0))
    labels = np.zeros((10, 40, 40), np.uint8)
    labels[:, 5:35, 5:35] = 1
    labels[2:5, 10:20, 10:30] = 2  # 3 slices x 10 rows (y) x 20 columns (x)
    hu = np.where(labels == 2, 30.0, 100.0)
    (lesion,) = measure_lesions(labels, hu, g)
    assert lesion.voxels == 600 and lesion.volume_ml == pytest.approx(600 * 0.5 * 0.5 * 2 / 1000)
    assert lesion.longest_axial_diameter_mm == pytest.approx(np.hypot(10.0, 5.0), abs=0.05)
    np.testing.assert_allclose(lesion.centroid_lps, (100 + 19.5 * 0.5, 50 + 14.5 * 0.5, -20 + 3 * 2.0))
    np.testing.assert_allclose(lesion.centroid_ras, (-(100 + 19.5 * 0.5), -(50 + 14.5 * 0.5), -14.0))
    assert lesion.mean_hu == 30.0
    liver_ml, tumor_ml = organ_volumes_ml(labels, g)
    assert liver_ml == pytest.approx(9000 * 0.5e-3) and tumor_ml == pytest.approx(0.3)
    assert list(np.flatnonzero(slices_with_tumor(labels))) == [2, 3, 4]


def test_lesions_are_numbered_largest_first():
    labels = np.zeros((5, 30, 30), np.uint8)
    labels[1:3, 2:4, 2:4] = 2
    labels[1:4, 10:20, 10:20] = 2
    lesions = measure_lesions(labels, np.zeros(labels.shape), Geometry((1.0, 1.0, 1.0)))
    assert [l.id for l in lesions] == [1, 2] and lesions[0].voxels == 300 and lesions[1].voxels == 8


def test_axial_diameter_ignores_extent_along_z():
    comp = np.zeros((30, 5, 5), bool); comp[:, 2, 2] = True  # a 30 mm long needle along z, 1 voxel wide
    assert longest_axial_diameter_mm(comp, Geometry((1.0, 1.0, 1.0))) == pytest.approx(np.sqrt(2), abs=1e-6)


def test_a_large_single_slice_lesion_is_measured_exactly():
    comp = np.zeros((3, 120, 120), bool); comp[1, 10:110, 10:110] = True  # 100 x 100 voxel square
    d = longest_axial_diameter_mm(comp, Geometry((0.7, 0.7, 2.0)))
    assert d == pytest.approx(np.hypot(70.0, 70.0), abs=1e-6)


def test_liver_candidates_of_air_fat_or_specks_are_rejected_and_liver_tissue_is_not():
    from LiverTumorSegLib.postprocess import implausible_liver
    mask = np.zeros((10, 10, 10), bool); mask[2:8, 2:8, 2:8] = True  # 216 voxels of 27 ml at 3 mm
    for hu, expected in [(-1000, "median -1000 HU"), (-100, "median -100 HU"), (700, "median 700 HU")]:
        assert expected in implausible_liver(mask, np.full(mask.shape, hu), 0.027, 1.0, (-60, 250))
    assert implausible_liver(mask, np.full(mask.shape, 60), 0.027, 1.0, (-60, 250)) is None
    assert "below the 30 ml minimum" in implausible_liver(mask, np.full(mask.shape, 60), 0.027, 30.0, (-60, 250))
