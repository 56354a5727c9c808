"""Training.evaluate_mr (MR liver measurements) and the MR entries that Training.import_pretrained writes."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from LiverTumorSegLib.config import DEFAULT_MODELS_DIR
from LiverTumorSegLib.manifest import load_manifest
from Training.evaluate_mr import liver_mask, scores, summarise
from Training.import_pretrained import lesion_manifest, liver_manifest


def test_import_pretrained_writes_the_modalities_the_shipped_manifests_hold():
    shipped = DEFAULT_MODELS_DIR / "pyliverlesionseg"
    assert liver_manifest({}, (3.0, 3.0, 3.0)).modalities == load_manifest(shipped / "liver.json").modalities
    assert lesion_manifest({}, (1.0, 1.0, 3.0)).modalities == load_manifest(shipped / "tumor.json").modalities


def blob_probability() -> tuple[sitk.Image, sitk.Image]:
    """(probability on a 3 mm grid falling off from a centre, an MR-like 1.5 x 1.5 x 6 mm grid over the same field)."""
    z, y, x = np.mgrid[:16, :20, :20]
    r = np.sqrt((z - 8) ** 2 + (y - 10) ** 2 + (x - 10) ** 2)
    prob = sitk.GetImageFromArray(np.clip(1.0 - r / 10.0, 0, 1).astype(np.float32))
    prob.SetSpacing((3.0, 3.0, 3.0))
    mr = sitk.Image(40, 40, 8, sitk.sitkFloat32)
    mr.SetSpacing((1.5, 1.5, 6.0))
    return prob, mr


def test_a_lower_threshold_gives_a_larger_liver_on_the_mr_grid():
    prob, mr = blob_probability()
    at_half, at_03 = liver_mask(prob, mr, 0.5, 0), liver_mask(prob, mr, 0.3, 0)
    assert at_half.shape == (8, 40, 40) and at_half.any()
    assert at_03.sum() > at_half.sum() and not (at_half & ~at_03).any()


def test_scores_and_summary_rank_variants_by_median_dice():
    ref = np.zeros((4, 10, 10), bool)
    ref[1:3, 2:8, 2:8] = True
    s = scores(ref, ref, (1.0, 1.0, 2.0))
    assert s["dice"] == 1.0 and s["volume_error_pct"] == 0.0
    rows = [{"case": c, "variant": v, "threshold": 0.5, "opening": 0, "dice": d, "volume_error_pct": e}
            for c, v, d, e in (("a", "x", 0.9, 5), ("b", "x", 0.7, -10), ("a", "y", 0.8, 1), ("b", "y", 0.85, 2))]
    best = summarise(rows, ("a", "b"))[0]
    assert (best["variant"], best["worst_dice"], best["median_abs_volume_error_pct"]) == ("y", 0.8, 1.5)
