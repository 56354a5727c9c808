"""Lesion measurements on realistic grids (0.6 x 0.9 mm in-plane, oblique and mirrored directions), worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from LiverTumorSegLib.geometry import Geometry
from LiverTumorSegLib.lesions import longest_axial_diameter_mm, measure_lesions

from .test_geometry import OBLIQUE

SPACING = (0.6, 0.9, 2.5)  # x, y, z mm: unequal in-plane spacing, as in many scanners' reconstructions
ORIGIN = (-120.0, 35.0, 410.0)
MIRRORED = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0)


def _box_lesion(shape=(6, 30, 40), z=(1, 3), y=(5, 9), x=(10, 20)) -> np.ndarray:
    """Label map with liver everywhere and a box tumor over z, y, x index ranges (stop exclusive)."""
    labels = np.ones(shape, np.uint8)
    labels[z[0]:z[1], y[0]:y[1], x[0]:x[1]] = 2
    return labels


def test_box_diameter_uses_x_spacing_along_x_and_y_spacing_along_y():
    # 10 columns x 4 rows on each slice: edge to edge 10 * 0.6 = 6.0 mm by 4 * 0.9 = 3.6 mm.
    comp = _box_lesion() == 2
    expected = np.hypot(6.0, 3.6)  # 6.997; with x and y spacing swapped it would be hypot(9.0, 2.4) = 9.31
    assert longest_axial_diameter_mm(comp, Geometry(SPACING)) == pytest.approx(expected, abs=1e-6)


def test_a_staircase_lesion_is_measured_corner_to_corner():
    comp = np.zeros((1, 20, 20), bool)
    for step in range(6):  # voxels (x, y) = (2s, s) and (2s+1, s): a staircase 12 columns wide, 6 rows high
        comp[0, step, 2 * step:2 * step + 2] = True
    # Farthest corners: (-0.5, -0.5) and (11.5, 5.5) in (i, j) -> 12 * 0.6 = 7.2 mm and 6 * 0.9 = 5.4 mm.
    assert longest_axial_diameter_mm(comp, Geometry(SPACING)) == pytest.approx(np.hypot(7.2, 5.4), abs=1e-6)


@pytest.mark.parametrize("direction", [OBLIQUE, MIRRORED], ids=["oblique", "mirrored"])
def test_volume_centroid_and_diameter_on_an_oblique_or_mirrored_anisotropic_grid(direction):
    labels = _box_lesion()
    hu = np.where(labels == 2, 35.0, 110.0)
    (lesion,) = measure_lesions(labels, hu, Geometry(SPACING, ORIGIN, tuple(direction)))
    assert lesion.voxels == 2 * 4 * 10
    assert lesion.volume_ml == pytest.approx(80 * 0.6 * 0.9 * 2.5 / 1000, abs=5e-4)  # 0.108 ml
    # Mean index (i, j, k) = (14.5, 6.5, 1.5); LPS = origin + direction @ (spacing * index).
    offset_mm = np.array([14.5 * 0.6, 6.5 * 0.9, 1.5 * 2.5])
    lps = np.array(ORIGIN) + np.reshape(direction, (3, 3)) @ offset_mm
    np.testing.assert_allclose(lesion.centroid_lps, lps, atol=1e-6)
    np.testing.assert_allclose(lesion.centroid_ras, lps * [-1, -1, 1], atol=1e-6)
    assert lesion.longest_axial_diameter_mm == pytest.approx(np.hypot(6.0, 3.6), abs=0.05)
    assert lesion.mean_hu == 35.0


def test_two_lesions_on_an_anisotropic_grid_keep_their_own_centroids():
    labels = _box_lesion()
    labels[4:6, 20:24, 30:33] = 2  # 2 x 4 x 3 = 24 voxels, separate from the first box
    lesions = measure_lesions(labels, np.zeros(labels.shape), Geometry(SPACING, ORIGIN))
    assert [l.voxels for l in lesions] == [80, 24]
    np.testing.assert_allclose(lesions[1].centroid_lps, np.array(ORIGIN) + [31 * 0.6, 21.5 * 0.9, 4.5 * 2.5], atol=1e-6)
    assert lesions[1].longest_axial_diameter_mm == pytest.approx(np.hypot(3 * 0.6, 4 * 0.9), abs=0.05)


def test_per_slice_classes_and_tumor_ranges_of_two_lesions():
    from LiverTumorSegLib.lesions import slices_with_tumor
    from LiverTumorSegLib.result import SegmentationResult

    labels = _box_lesion()  # tumor on slices 1 and 2
    labels[4:6, 20:24, 30:33] = 2  # and on slices 4 and 5
    result = SegmentationResult(labels, Geometry(SPACING, ORIGIN), slice_has_tumor=slices_with_tumor(labels))
    assert result.slice_classes() == ["Sane", "Tumor", "Tumor", "Sane", "Tumor", "Tumor"]
    assert result.tumor_slice_ranges() == [[1, 2], [4, 5]] and result.summary()["tumor_slice_ranges"] == [[1, 2], [4, 5]]
    assert SegmentationResult(labels * 0, Geometry(SPACING)).tumor_slice_ranges() == []
