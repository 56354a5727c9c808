"""Synthetic tumor insertion: tumors only inside the liver, darker than liver, nothing changed outside."""
from __future__ import annotations

import numpy as np
import pytest

from Training.config import SyntheticTumorConfig
from Training.synthetic_tumors import insert_tumors


def _liver_phantom(seed: int):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:40, :48, :48]
    liver = ((zz - 20) / 15) ** 2 + ((yy - 24) / 18) ** 2 + ((xx - 22) / 16) ** 2 < 1
    hu = np.where(liver, 110.0, 30.0) + rng.normal(0, 8, liver.shape)
    return hu.astype(np.float32), liver.astype(np.uint8)


@pytest.mark.parametrize("seed", range(8))
def test_tumors_lie_inside_the_liver_and_are_hypodense(seed: int) -> None:
    hu, lab = _liver_phantom(seed)
    cfg = SyntheticTumorConfig(enabled=True, max_tumors=3, radius_mm=(3.0, 10.0), contrast_hu=(30.0, 60.0))
    new_hu, new_lab = insert_tumors(hu, lab, (1.5, 1.5, 1.5), cfg, np.random.default_rng(seed))
    tumor = new_lab == 2
    assert tumor.any()
    assert np.all(lab[tumor] == 1), "tumor label outside the liver"
    assert np.array_equal(new_lab > 0, lab > 0), "liver extent must not change"
    outside = lab == 0
    np.testing.assert_array_equal(new_hu[outside], hu[outside])
    assert new_hu[tumor].mean() < hu[(new_lab == 1)].mean() - 15


def test_insertion_is_reproducible_and_leaves_inputs_untouched() -> None:
    hu, lab = _liver_phantom(0)
    hu0, lab0 = hu.copy(), lab.copy()
    cfg = SyntheticTumorConfig(enabled=True)
    a = insert_tumors(hu, lab, (1.5, 1.5, 1.5), cfg, np.random.default_rng(7))
    b = insert_tumors(hu, lab, (1.5, 1.5, 1.5), cfg, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(hu, hu0)
    np.testing.assert_array_equal(lab, lab0)


def test_tumor_size_follows_the_radius_range() -> None:
    hu, lab = _liver_phantom(1)
    cfg = SyntheticTumorConfig(enabled=True, max_tumors=1, radius_mm=(6.0, 6.0))
    _, new_lab = insert_tumors(hu, lab, (1.0, 1.0, 1.0), cfg, np.random.default_rng(3))
    volume = (new_lab == 2).sum()  # mm^3 at 1 mm; a 6 mm-radius sphere is ~905 mm^3
    assert 150 < volume < 3 * 905


def test_no_liver_means_no_tumor() -> None:
    hu = np.zeros((20, 20, 20), np.float32)
    lab = np.zeros((20, 20, 20), np.uint8)
    _, new_lab = insert_tumors(hu, lab, (1, 1, 1), SyntheticTumorConfig(enabled=True), np.random.default_rng(0))
    assert not new_lab.any()
