"""Post-processing at the liver's edge: a tumor that bulges out of the liver mask stays a whole tumor."""
from __future__ import annotations

import numpy as np

from LiverTumorSegLib.postprocess import compose_labels


def test_a_tumor_bulging_out_of_the_liver_mask_is_kept_whole():
    liver = np.zeros((20, 30, 30), bool)
    liver[2:18, 2:20, 2:28] = True
    tumor = np.zeros_like(liver)
    tumor[6:12, 15:25, 10:16] = True  # rows 15..19 inside the liver, 20..24 outside it: not enclosed
    labels = compose_labels(liver & ~tumor, tumor, voxel_mm3=1.0, min_lesion_mm3=10.0)
    assert (labels == 2).sum() == tumor.sum() == 360
    assert (labels == 1).sum() == (liver & ~tumor).sum()


def test_a_tumor_away_from_the_liver_is_dropped_and_the_liver_is_kept():
    liver = np.zeros((20, 30, 30), bool)
    liver[2:10, 2:12, 2:12] = True
    tumor = np.zeros_like(liver)
    tumor[14:18, 20:26, 20:26] = True  # larger than the min size, but not touching the liver
    labels = compose_labels(liver, tumor, voxel_mm3=1.0, min_lesion_mm3=10.0)
    assert not (labels == 2).any() and (labels == 1).sum() == liver.sum()
