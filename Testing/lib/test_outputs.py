"""Outputs that never lose a case: unique case names, readable files, full empty tables, clean read errors,
and `evaluate` that neither overwrites silently nor calls an undefined score perfect."""
import csv
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LiverTumorSegLib.errors import InvalidInputError, OutputExistsError
from LiverTumorSegLib.evaluation import markdown_summary, run_evaluation
from LiverTumorSegLib.io import expand_inputs, read_image, write_image, write_json, write_table
from LiverTumorSegLib.outputs import case_names, is_complete
from LiverTumorSegLib.result import lesion_columns


def test_case_names_are_unique_within_a_run_and_independent_of_order():
    paths = [Path("a/ct.nii.gz"), Path("b/ct.nii.gz"), Path("c/scan.nrrd"), Path("d/series")]
    assert case_names(paths) == ["a_ct", "b_ct", "scan", "series"]
    assert case_names(paths[::-1]) == ["series", "scan", "b_ct", "a_ct"]
    deep = case_names([Path("x/p1/ct.nii.gz"), Path("y/p1/ct.nii.gz")])
    assert deep == ["x_p1_ct", "y_p1_ct"]


def test_case_names_differing_only_in_letter_case_or_suffix_still_get_their_own_outputs():
    names = case_names([Path("a/CT.nii.gz"), Path("a/ct.nrrd")])
    assert len({n.casefold() for n in names}) == 2  # distinct on case-insensitive file systems too


def test_the_same_input_named_twice_is_one_case(tmp_path):
    ct = tmp_path / "ct.nii.gz"; ct.write_bytes(b"x")
    assert expand_inputs([ct, tmp_path / "." / "ct.nii.gz", tmp_path]) == [ct]


@pytest.mark.parametrize("writer", ["image", "table", "json"])
def test_outputs_respect_the_umask_not_0600(tmp_path, phantom, writer):
    old = os.umask(0o022)
    try:
        if writer == "image":
            paths = [write_image(phantom, tmp_path / "seg.nii.gz")]
        elif writer == "table":
            paths = list(write_table([], tmp_path / "t_lesions.csv"))
        else:
            paths = [write_json({"a": 1}, tmp_path / "x.json")]
    finally:
        os.umask(old)
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_an_empty_lesion_table_has_the_full_header(tmp_path):
    csv_path, _ = write_table([], tmp_path / "c_lesions.csv")
    with open(csv_path, newline="") as f:
        assert next(csv.reader(f)) == lesion_columns()
    assert lesion_columns()[:3] == ["id", "volume_ml", "longest_axial_diameter_mm"]


def test_a_corrupt_file_message_names_the_problem_without_source_paths(tmp_path):
    junk = tmp_path / "junk.nrrd"; junk.write_bytes(b"not an image\n" * 10)
    with pytest.raises(InvalidInputError) as info:
        read_image(junk)
    message = str(info.value)
    assert "junk.nrrd" in message and ".cxx" not in message and "sitk::" not in message


def test_a_folder_without_images_gives_one_clean_error_and_no_gdcm_warning(tmp_path, capfd):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(InvalidInputError, match="no DICOM series found"):
        read_image(tmp_path)
    captured = capfd.readouterr()
    assert "GDCM" not in captured.err + captured.out and "itk" not in (captured.err + captured.out).lower()


def test_a_case_is_complete_only_when_every_output_exists_and_is_not_empty(tmp_path):
    files = [tmp_path / "a", tmp_path / "b"]
    files[0].write_text("x")
    assert not is_complete(files)
    files[1].write_text("")
    assert not is_complete(files)
    files[1].write_text("y")
    assert is_complete(files) and not is_complete([])


def _labels(tmp_path: Path, name: str, array: np.ndarray) -> Path:
    path = tmp_path / name
    sitk.WriteImage(sitk.GetImageFromArray(array.astype(np.uint8)), str(path))
    return path


def test_evaluate_refuses_to_overwrite_its_results_and_replaces_them_when_asked(tmp_path):
    a = np.zeros((6, 6, 6)); a[1:4, 1:4, 1:4] = 1
    pred, ref = _labels(tmp_path, "p.nii.gz", a), _labels(tmp_path, "r.nii.gz", a)
    out = tmp_path / "eval"; out.mkdir()
    (out / "summary.md").write_text("my notes")
    with pytest.raises(OutputExistsError, match="summary.md"):
        run_evaluation(pred, ref, out)
    assert (out / "summary.md").read_text() == "my notes" and not (out / "metrics.csv").exists()
    run_evaluation(pred, ref, out, overwrite=True)
    assert (out / "summary.md").read_text() != "my notes"


def test_evaluate_calls_tumor_dice_undefined_when_neither_side_has_tumor(tmp_path):
    a = np.zeros((6, 6, 6)); a[1:4, 1:4, 1:4] = 1
    csv_path, md_path = run_evaluation(_labels(tmp_path, "p.nii.gz", a), _labels(tmp_path, "r.nii.gz", a), tmp_path / "e")
    row = next(csv.DictReader(open(csv_path)))
    assert row["tumor_dice"] == "nan" and row["tumor_iou"] == "nan" and float(row["liver_dice"]) == 1.0
    summary = md_path.read_text()
    assert "| tumor_dice | nan | nan | 0 |" in summary and "–" not in summary
    assert "- tumor: nan" in summary


def test_summary_writes_nan_where_it_says_nan():
    rows = [{"case": "a", "x": float("nan"), **{f"{s}_{k}_voxels": 0 for s in ("liver", "tumor")
                                                for k in ("intersection", "pred", "ref")}}]
    text = markdown_summary(rows)
    assert "| x | nan | nan | 0 |" in text and "nan marks an undefined value" in text
