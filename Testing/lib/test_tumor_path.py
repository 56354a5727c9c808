"""The tumor path end to end: a lesion of known size and place in a real CT, found by a tiny rule tumor model.

Everything asserted here follows from the lesion that was inserted (see Testing/model_fixtures.py), not from
what any trained model happens to predict; one case runs the rule tumor model beside the shipped liver model.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import SimpleITK as sitk

import LiverTumorSegLib as lts
from LiverTumorSegLib.io import read_image
from LiverTumorSegLib.runtime import Model

from ..model_fixtures import Lesion, deep_liver_index, insert_lesion, models_folder, rule_liver
from .test_geometry import OBLIQUE

RADIUS_MM = 12.0
TUMOR_SPACING_MM = 2.0  # of the tiny tumor model
GEOMETRIES = {  # spacing (x, y, z) mm, direction: the real CT's voxels re-labelled onto other grids
    "native": None,
    "oblique": ((2.1, 3.4, 2.7), OBLIQUE),
    "mirrored": ((3.0, 3.0, 3.0), (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0)),
    "anisotropic": ((0.9, 0.6, 4.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)),
}


@pytest.fixture(scope="module")
def real_ct(shared_data) -> tuple[sitk.Image, tuple[int, int, int]]:
    """The small real CT (3 mm) and the index of its deepest liver voxel (from the reference liver)."""
    folder = shared_data / "totalseg_example"
    ct = read_image(folder / "ct.nii.gz")
    return ct, deep_liver_index(sitk.ReadImage(str(folder / "liver_reference.nii.gz")))


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Rule liver + rule tumor model: no trained model involved."""
    return models_folder(tmp_path_factory.mktemp("models") / "tiny", liver="tiny")


@pytest.fixture(scope="module")
def tiny_models_tumor_with_liver(tmp_path_factory):
    """Rule liver model + a rule tumor model that also has a liver class (like the shipped tumor model)."""
    return models_folder(tmp_path_factory.mktemp("models") / "tiny3", liver="tiny", tumor_with_liver=True)


@pytest.fixture(scope="module")
def shipped_liver_models(tmp_path_factory):
    """The library's default liver model beside the rule tumor model."""
    return models_folder(tmp_path_factory.mktemp("models") / "shipped_liver", liver="default")


def lesion_on(real_ct, geometry: str) -> Lesion:
    """The real CT on one of GEOMETRIES with a lesion of RADIUS_MM at its deepest liver voxel."""
    ct, index = real_ct
    if GEOMETRIES[geometry] is not None:
        ct = sitk.Image(ct)
        spacing, direction = GEOMETRIES[geometry]
        ct.SetSpacing(spacing); ct.SetDirection(tuple(float(d) for d in direction)); ct.SetOrigin((12.0, -40.0, 300.0))
    return insert_lesion(ct, ct.TransformIndexToPhysicalPoint(index), RADIUS_MM)


def tolerance_mm(lesion: Lesion) -> float:
    """How far label 2 may stray from the lesion surface: one voxel of the coarser of input and model grid."""
    return max(max(lesion.image.GetSpacing()), TUMOR_SPACING_MM)


def assert_reports_the_lesion(result: lts.SegmentationResult, lesion: Lesion) -> None:
    """Label 2 covers the lesion on the input grid and the lesion table row describes it."""
    tol = tolerance_mm(lesion)
    tumor = result.labels == 2
    assert result.labels.shape == lesion.mask.shape
    assert tumor[lesion.within(RADIUS_MM - tol)].all(), "label 2 misses part of the lesion core"
    assert not tumor[~lesion.within(RADIUS_MM + tol)].any(), "label 2 outside the lesion"
    (row,) = result.lesions
    voxel_ml = float(np.prod(lesion.image.GetSpacing())) / 1000
    assert row.volume_ml == pytest.approx(lesion.mask.sum() * voxel_ml, rel=0.1)
    np.testing.assert_allclose(row.centroid_lps, lesion.center_lps, atol=tol / 2)
    np.testing.assert_allclose(row.centroid_ras, lesion.center_lps * [-1, -1, 1], atol=tol / 2)
    in_plane = max(lesion.image.GetSpacing()[:2])
    assert 2 * RADIUS_MM - in_plane <= row.longest_axial_diameter_mm <= 2 * RADIUS_MM + 2 * in_plane
    assert row.mean_hu > 2000, "the lesion's own (inserted) intensity"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks."""
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_label_2_covers_the_lesion_on_any_input_grid(real_ct, tiny_models, geometry):
    lesion = lesion_on(real_ct, geometry)
    result = lts.segment(lesion.image, device="cpu", models_dir=tiny_models)
    assert_reports_the_lesion(result, lesion)
    assert dice(result.labels > 0, rule_liver(lesion.image)) > 0.9, "liver + tumor is what the rule liver model marks"


@pytest.mark.parametrize("geometry", ["native", "oblique"])
def test_a_tumor_model_with_a_liver_class_gives_the_same_lesion_and_liver(real_ct, tiny_models_tumor_with_liver, geometry):
    lesion = lesion_on(real_ct, geometry)
    result = lts.segment(lesion.image, device="cpu", models_dir=tiny_models_tumor_with_liver)
    assert_reports_the_lesion(result, lesion)
    assert dice(result.labels > 0, rule_liver(lesion.image)) > 0.9


def test_the_shipped_liver_model_and_the_rule_tumor_model_find_the_lesion(real_ct, shipped_liver_models):
    lesion = lesion_on(real_ct, "native")
    result = lts.segment(lesion.image, device="cpu", models_dir=shipped_liver_models)
    assert_reports_the_lesion(result, lesion)
    assert result.liver_volume_ml > 500, "the shipped liver model finds the liver around the lesion"




def test_min_lesion_mm3_above_its_volume_removes_it_and_below_keeps_it(real_ct, tiny_models):
    lesion = lesion_on(real_ct, "native")
    volume_mm3 = lesion.mask.sum() * float(np.prod(lesion.image.GetSpacing()))
    kept = lts.segment(lesion.image, device="cpu", models_dir=tiny_models, min_lesion_mm3=0.5 * volume_mm3)
    dropped = lts.segment(lesion.image, device="cpu", models_dir=tiny_models, min_lesion_mm3=2.0 * volume_mm3)
    assert len(kept.lesions) == 1 and (kept.labels == 2).any()
    assert dropped.lesions == [] and not (dropped.labels == 2).any() and dropped.tumor_volume_ml == 0.0
    assert (dropped.labels[lesion.within(RADIUS_MM - tolerance_mm(lesion))] == 1).all(), "a dropped lesion is liver"


@pytest.fixture
def model_calls(monkeypatch) -> dict[str, int]:
    """Count the patches each model stage runs (by manifest stage)."""
    calls = {"liver": 0, "tumor": 0}
    run = Model.run

    def counting(self, batch):
        calls[self.manifest.stage] += 1
        return run(self, batch)

    monkeypatch.setattr(Model, "run", counting)
    return calls


def test_liver_only_gives_no_tumor_and_never_calls_the_tumor_model(real_ct, tiny_models, model_calls):
    lesion = lesion_on(real_ct, "native")
    full = lts.segment(lesion.image, device="cpu", models_dir=tiny_models)
    assert model_calls["tumor"] > 0 and full.lesions, "the counter sees the tumor model when it runs"
    model_calls.update(liver=0, tumor=0)
    result = lts.segment(lesion.image, device="cpu", models_dir=tiny_models, liver_only=True)
    assert model_calls["tumor"] == 0 and model_calls["liver"] > 0
    assert not (result.labels == 2).any() and result.lesions == [] and not result.slice_has_tumor.any()


@pytest.mark.parametrize("geometry", ["native", "oblique"])
def test_per_slice_tumor_flags_match_the_slices_the_lesion_spans(real_ct, tiny_models, geometry):
    lesion = lesion_on(real_ct, geometry)
    result = lts.segment(lesion.image, device="cpu", models_dir=tiny_models)
    tol = tolerance_mm(lesion)
    flagged = set(np.flatnonzero(result.slice_has_tumor))
    core = set(np.flatnonzero(lesion.within(RADIUS_MM - tol).any(axis=(1, 2))))
    outer = set(np.flatnonzero(lesion.within(RADIUS_MM + tol).any(axis=(1, 2))))
    assert core <= flagged <= outer and core
    classes = result.slice_classes()
    assert len(classes) == lesion.mask.shape[0] and {k for k, c in enumerate(classes) if c == "Tumor"} == flagged
    assert set(classes) == {"Sane", "Tumor"}
    (first, last), = result.tumor_slice_ranges()
    assert set(range(first, last + 1)) == flagged and result.summary()["tumor_slice_ranges"] == [[first, last]]


def test_progress_runs_monotonically_from_zero_to_one_through_both_stages(real_ct, tiny_models):
    seen = []
    lts.segment(lesion_on(real_ct, "native").image, device="cpu", models_dir=tiny_models,
                progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert all(0.0 <= f <= 1.0 for f in fractions)
    stages = [m.split(":")[0] for _, m in seen]
    assert stages.index("liver") < stages.index("tumor") < stages.index("resampling to the input grid")


def test_stage_timings_are_non_negative_and_add_up_to_at_most_the_run(real_ct, tiny_models):
    image = lesion_on(real_ct, "native").image
    start = time.perf_counter()
    result = lts.segment(image, device="cpu", models_dir=tiny_models)
    elapsed = time.perf_counter() - start  # an invariant of the bookkeeping, not a speed limit
    assert {"stage1_liver", "stage2_tumor", "resample_back", "lesions"} <= set(result.timings)
    assert all(t >= 0.0 for t in result.timings.values()) and sum(result.timings.values()) <= elapsed


@pytest.mark.parametrize("radius_mm,is_liver", [(15.0, False), (30.0, True)])  # about 14 ml and 113 ml of tissue
def test_a_liver_candidate_below_the_minimum_volume_is_no_liver(tiny_models, radius_mm, is_liver):
    air = sitk.Image(48, 48, 48, sitk.sitkInt16) - 1000
    air.SetSpacing((2.0, 2.0, 2.0))
    blob = insert_lesion(air, air.TransformContinuousIndexToPhysicalPoint((23.5, 23.5, 23.5)), radius_mm).mask
    hu = np.where(blob, 60, -1000).astype(np.int16)
    image = sitk.GetImageFromArray(hu); image.CopyInformation(air)
    result = lts.segment(image, device="cpu", models_dir=tiny_models)
    minimum = lts.SegmentationConfig().postprocess.min_liver_ml
    assert (result.liver_volume_ml > minimum) == is_liver
    assert any(f"below the {minimum:g} ml minimum" in w for w in result.warnings) != is_liver
