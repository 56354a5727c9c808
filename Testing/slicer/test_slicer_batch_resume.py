"""Resuming a Slicer batch: the CLI's naming and completeness rules, so a half-written case is redone."""
from __future__ import annotations

import csv
from pathlib import Path

from LiverTumorSegLib.outputs import SKIPPED, case_names
from LiverTumorSegLib.result import lesion_columns
from LiverTumorSegLogic.batch import caseNames


def test_the_batch_names_cases_by_the_same_rule_as_the_cli():
    paths = [Path("x/p1/ct.nii.gz"), Path("y/p1/ct.nii.gz"), Path("a/CT.nii.gz"), Path("b/scan.nrrd")]
    assert caseNames(paths) == case_names(paths) == ["x_p1_ct", "y_p1_ct", "a_CT", "scan"]


def test_a_case_with_only_one_of_its_two_outputs_is_redone_not_skipped(headless, logic, small_ct_path, tmp_path):
    (first,) = logic.processFiles([small_ct_path], tmp_path, liverOnly=True)
    segmentation, lesions = Path(first.segmentationFile), Path(first.lesionsFile)
    lesions.unlink()
    (second,) = logic.processFiles([small_ct_path], tmp_path, liverOnly=True)
    assert second.status == "done" and lesions.is_file()

    segmentation.write_bytes(b"")  # an empty file left by a crash is no output
    (third,) = logic.processFiles([small_ct_path], tmp_path, liverOnly=True)
    assert third.status == "done" and segmentation.stat().st_size > 0

    (fourth,) = logic.processFiles([small_ct_path], tmp_path, liverOnly=True)
    assert fourth.status == SKIPPED and "overwrite=True" in fourth.message


def test_an_empty_slicer_lesion_table_has_the_same_columns_as_the_cli_table(headless, logic, small_ct_path, tmp_path):
    (report,) = logic.processFiles([small_ct_path], tmp_path, liverOnly=True)
    with open(report.lesionsFile, newline="") as f:
        assert next(csv.reader(f)) == lesion_columns()
    schema = Path(report.lesionsFile).with_suffix(".schema.csv")  # Slicer's column types and units (README)
    assert schema.is_file() and "volume_ml" in schema.read_text()
