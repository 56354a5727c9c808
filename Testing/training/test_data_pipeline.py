"""Preprocessing cache (reused, invalidated on change, stage 2 cropped like the cascade), splits, patches."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LiverTumorSegLib.preprocess import stage2_case
from Training.config import DataConfig, StageConfig, load_config
from Training.data.adapters import Case, LabelPart, load_case
from Training.data.cache import build_cache, cache_folder, load_cached
from Training.data.sampler import PatchDataset, foreground_index
from Training.data.splits import kfold, split_cases
from Training.stage import stage_manifest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lits_case(tmp_path: Path, small_lits) -> Case:
    ct, lab = small_lits
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(lab, str(tmp_path / "lab.nii.gz"))
    return Case("c1", str(tmp_path / "ct.nii.gz"), (LabelPart(str(tmp_path / "lab.nii.gz"), {1: 1, 2: 2}),))


def _files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_cache_is_reused_then_invalidated_by_settings_or_source_changes(lits_case: Case, tmp_path: Path) -> None:
    stage = StageConfig(spacing=(6.0, 6.0, 6.0))
    folder = build_cache([lits_case], stage, tmp_path / "cache")
    before = _files(folder)
    assert build_cache([lits_case], stage, tmp_path / "cache") == folder and _files(folder) == before
    other = build_cache([lits_case], StageConfig(spacing=(8.0, 8.0, 8.0)), tmp_path / "cache")
    assert other != folder and load_cached(lits_case, other).image.shape != load_cached(lits_case, folder).image.shape
    os.utime(lits_case.image, ns=(1, 1))  # the source changed
    build_cache([lits_case], stage, tmp_path / "cache")
    assert len(list(folder.glob("c1-*.json"))) == 2


def test_stage2_cache_matches_the_library_crop(lits_case: Case, tmp_path: Path) -> None:
    stage = StageConfig(stage="tumor", classes={0: "background", 1: "liver", 2: "tumor"}, spacing=(3.0, 3.0, 3.0))
    cached = load_cached(lits_case, build_cache([lits_case], stage, tmp_path / "cache"))
    ct_roi, lab_roi = stage2_case(*load_case(lits_case), stage_manifest(stage))
    np.testing.assert_array_equal(cached.labels, sitk.GetArrayFromImage(lab_roi))
    np.testing.assert_allclose(cached.image, np.rint(sitk.GetArrayFromImage(ct_roi)), atol=0.5)
    assert cached.geometry.origin == pytest.approx(ct_roi.GetOrigin())


def test_splits_are_case_level_seeded_and_disjoint() -> None:
    cases = [Case(f"p{i:02d}", "x", ()) for i in range(10)]
    train, val = split_cases(cases, DataConfig(seed=3, val_fraction=0.2))
    assert len(val) == 2 and not set(train) & set(val) and len(train) + len(val) == 10
    assert split_cases(list(reversed(cases)), DataConfig(seed=3, val_fraction=0.2)) == (train, val)
    folds = kfold([c.case_id for c in cases], 5, seed=1)
    assert sorted(sum(folds, [])) == sorted(c.case_id for c in cases)
    assert split_cases(cases, DataConfig(n_folds=5, fold=2, seed=1))[1] == folds[2]
    assert split_cases(cases, DataConfig(val_cases=["p04"], exclude_cases=["p05"])) == (
        [c.case_id for c in cases if c.case_id not in ("p04", "p05")], ["p04"])


def test_patches_are_reproducible_and_oversample_foreground(lits_case: Case, tmp_path: Path) -> None:
    cfg = load_config(REPO / "Training/configs/tumor.yaml", ["stage.spacing=[4.0,4.0,4.0]",
                                                             "stage.train_patch_size=[16,16,16]", "train.fg_prob=1.0"])
    cached = load_cached(lits_case, build_cache([lits_case], cfg.stage, tmp_path / "cache"))
    data = PatchDataset([cached], cfg, length=6)
    a = [data[i] for i in range(6)]
    assert all(x.shape == (1, 16, 16, 16) and y.shape == (16, 16, 16) for x, y in a)
    assert all((y > 0).any() for _, y in a)
    np.testing.assert_array_equal(a[3][0].numpy(), data[3][0].numpy())
    data.set_epoch(1)
    assert not np.array_equal(a[3][0].numpy(), data[3][0].numpy())


def test_hard_negatives_are_soft_tissue_outside_the_liver() -> None:
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[2:5, 2:5, 2:5] = 1
    hu = np.full(labels.shape, -900.0)
    hu[6:9, 6:9, 6:9] = 50.0  # muscle-like, outside the liver
    hu[2:5, 2:5, 2:5] = 50.0  # liver voxels are never hard negatives
    idx = foreground_index(labels, 3, seed=0, hu=hu, hard_hu=(-50.0, 200.0))
    assert sorted(idx) == [0, 1] and len(idx[0]) == 27
    assert all(labels[tuple(v)] == 0 and hu[tuple(v)] == 50.0 for v in idx[0])
