"""Evaluation of label files: pairing by case name, grid checks, CSV and markdown output."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LiverTumorSegLib.evaluation import (
    case_id,
    evaluate_files,
    markdown_summary,
    pair_folders,
    run_evaluation,
    write_csv,
)

SPACING = (0.8, 0.7, 2.0)
ORIGIN = (-40.0, 12.5, 300.0)
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def labels(shift_x: int = 0) -> np.ndarray:
    """A (z, y, x) uint8 label map: a liver box with a tumor box inside, moved `shift_x` voxels along x."""
    a = np.zeros((8, 12, 16), np.uint8)
    a[1:7, 2:10, 2 + shift_x:12 + shift_x] = 1
    a[3:5, 4:7, 5 + shift_x:8 + shift_x] = 2
    return a


def write(path: Path, array: np.ndarray, spacing=SPACING, origin=ORIGIN) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(DIRECTION)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


@pytest.mark.parametrize("name, case", [
    ("case01_seg.nii.gz", "case01"), ("case01.seg.nrrd", "case01"), ("case01.nii", "case01"),
    ("case01.nrrd", "case01"), ("case01_seg.mha", "case01"), ("Case02.NII.GZ", "Case02"),
    ("liver_seg_v2.nii.gz", "liver_seg_v2"),
])
def test_case_id_strips_extension_and_seg_suffix(name, case):
    assert case_id(Path("/any/folder") / name) == case


def test_folders_pair_by_case_name_and_extra_references_are_ignored(tmp_path):
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    for path in (pred / "c1_seg.nii.gz", pred / "c2.nrrd", ref / "c1.nii.gz", ref / "c2.seg.nrrd",
                 ref / "c3.nii.gz"):
        write(path, labels())
    (pred / "notes.txt").write_text("not a label map")
    assert pair_folders(pred, ref) == [(pred / "c1_seg.nii.gz", ref / "c1.nii.gz"),
                                       (pred / "c2.nrrd", ref / "c2.seg.nrrd")]


@pytest.mark.parametrize("pred_files, error", [
    (("c1.nii.gz", "c9.nii.gz"), "no reference .* for the predicted case\\(s\\): c9"),
    (("c1.nii.gz", "c1_seg.nrrd"), "two files for case 'c1'"),
])
def test_folders_that_cannot_be_paired_are_refused(tmp_path, pred_files, error):
    for name in pred_files:
        write(tmp_path / "pred" / name, labels())
    write(tmp_path / "ref" / "c1.nii.gz", labels())
    with pytest.raises(ValueError, match=error):
        pair_folders(tmp_path / "pred", tmp_path / "ref")


def test_evaluate_files_gives_one_row_per_case_with_mm_from_the_header(tmp_path):
    refs = [write(tmp_path / "ref" / f"{c}.nii.gz", labels()) for c in ("a", "b")]
    preds = [write(tmp_path / "pred" / "a_seg.nii.gz", labels()),
             write(tmp_path / "pred" / "b_seg.nii.gz", labels(shift_x=1))]
    rows = evaluate_files(preds, refs)
    assert [row["case"] for row in rows] == ["a", "b"]
    assert rows[0]["liver_dice"] == 1.0 and rows[0]["tumor_assd_mm"] == 0.0
    assert rows[1]["liver_dice"] == pytest.approx(0.9)  # 9 of 10 columns shared
    assert rows[1]["liver_hd95_mm"] == pytest.approx(0.8)  # one x step of 0.8 mm
    assert rows[0]["liver_volume_ref_ml"] == pytest.approx(6 * 8 * 10 * 0.8 * 0.7 * 2.0 / 1000)


def test_no_lesion_in_prediction_and_reference_leaves_lesion_scores_undefined_like_dice(tmp_path):
    liver_only = np.where(labels() == 2, 1, labels()).astype(np.uint8)
    ref = write(tmp_path / "ref" / "a.nii.gz", liver_only)
    (row,) = evaluate_files([write(tmp_path / "pred" / "a_seg.nii.gz", liver_only)], [ref])
    assert row["lesions_pred"] == row["lesions_ref"] == 0 and math.isnan(row["tumor_dice"])
    assert all(math.isnan(row[k]) for k in ("lesion_precision", "lesion_recall", "lesion_f1"))
    (stray,) = evaluate_files([write(tmp_path / "pred2" / "a_seg.nii.gz", labels())], [ref])
    assert (stray["lesion_precision"], stray["lesion_recall"], stray["lesion_f1"]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("change, aspect", [
    (dict(spacing=(0.8, 0.7, 2.5)), "spacing"),
    (dict(origin=(-40.0, 12.5, 302.0)), "origin"),
])
def test_prediction_off_the_reference_grid_is_refused(tmp_path, change, aspect):
    pred = write(tmp_path / "pred.nii.gz", labels(), **change)
    ref = write(tmp_path / "ref.nii.gz", labels())
    with pytest.raises(ValueError, match=f"not on the same voxel grid: {aspect}"):
        evaluate_files([pred], [ref])


def test_prediction_of_another_size_is_refused(tmp_path):
    pred = write(tmp_path / "pred.nii.gz", labels()[:, :, :15])
    ref = write(tmp_path / "ref.nii.gz", labels())
    with pytest.raises(ValueError, match=r"size \(x, y, z\) \(15, 12, 8\) vs \(16, 12, 8\)"):
        evaluate_files([pred], [ref])


def test_label_values_other_than_0_1_2_are_refused(tmp_path):
    multi = labels()
    multi[0, 0, 0] = 5  # e.g. a multi-organ map where the liver is not label 1
    pred = write(tmp_path / "pred.nii.gz", multi)
    ref = write(tmp_path / "ref.nii.gz", labels())
    with pytest.raises(ValueError, match="0 background, 1 liver, 2 tumor"):
        evaluate_files([pred], [ref])


def test_csv_holds_one_row_per_case_with_every_metric(tmp_path):
    rows = [{"case": "a", "liver_dice": 0.123456789, "tumor_assd_mm": math.nan, "lesions_ref": 3}]
    path = write_csv(rows, tmp_path / "out.csv")
    with open(path, newline="") as f:
        read = list(csv.DictReader(f))
    assert read == [{"case": "a", "liver_dice": "0.123457", "tumor_assd_mm": "nan", "lesions_ref": "3"}]


def _row(case, liver_dice, tumor_assd, liver_counts, tumor_counts):
    row = {"case": case, "liver_dice": liver_dice, "tumor_assd_mm": tumor_assd}
    for name, (both, pred, ref) in (("liver", liver_counts), ("tumor", tumor_counts)):
        row.update({f"{name}_intersection_voxels": both, f"{name}_pred_voxels": pred, f"{name}_ref_voxels": ref})
    return row


def test_markdown_summary_gives_mean_sd_median_n_and_global_dice():
    rows = [_row("a", 0.8, 2.0, (8, 10, 10), (10, 10, 20)),
            _row("b", 0.6, math.nan, (3, 5, 5), (0, 5, 5))]
    text = markdown_summary(rows)
    assert "Cases: 2" in text
    assert "| liver_dice | 0.7000 ± 0.1414 | 0.7000 | 2 |" in text  # sample sd of 0.8 and 0.6
    assert "| tumor_assd_mm | 2.0000 ± 0.0000 | 2.0000 | 1 |" in text  # nan skipped, counted out of n
    assert "_voxels" not in text
    assert "- liver: 0.7333" in text  # 2 * 11 / 30
    assert "- tumor: 0.5000" in text  # 2 * 10 / 40


def test_run_evaluation_on_folders_writes_csv_and_markdown(tmp_path):
    for case, shift in (("c1", 0), ("c2", 1)):
        write(tmp_path / "pred" / f"{case}_seg.nii.gz", labels(shift))
        write(tmp_path / "ref" / f"{case}.nii.gz", labels())
    seen = []
    csv_path, md_path = run_evaluation(tmp_path / "pred", tmp_path / "ref", tmp_path / "out" / "eval",
                                       progress=lambda done, total, case: seen.append((done, total, case)))
    assert seen == [(1, 2, "c1"), (2, 2, "c2")]
    with open(csv_path, newline="") as f:
        assert [row["case"] for row in csv.DictReader(f)] == ["c1", "c2"]
    summary = md_path.read_text(encoding="utf-8")
    assert "Cases: 2" in summary and "| liver_dice | 0.9500 ± 0.0707 | 0.9500 | 2 |" in summary


def test_run_evaluation_on_two_files(tmp_path):
    pred = write(tmp_path / "p.nrrd", labels())
    ref = write(tmp_path / "r.nii.gz", labels())
    csv_path, md_path = run_evaluation(pred, ref, tmp_path / "out")
    assert csv_path.is_file() and "Cases: 1" in md_path.read_text(encoding="utf-8")


def test_run_evaluation_refuses_a_file_against_a_folder(tmp_path):
    pred = write(tmp_path / "p.nii.gz", labels())
    with pytest.raises(ValueError, match="both be files or both be folders"):
        run_evaluation(pred, tmp_path, tmp_path / "out")
