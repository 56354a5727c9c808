"""Re-runs into one output folder: a case is skipped only when its files are one result made with the
settings asked for now; otherwise it is redone, all its files together, and the summary says why."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from LiverTumorSegLib.cases import CaseOptions
from LiverTumorSegLib.cli import main
from LiverTumorSegLib.cohort import run_cohort

from ..model_fixtures import insert_lesion, models_folder, rule_liver


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Rule models (tissue = liver, > 1600 HU = tumor): fast, and their answer is known."""
    return models_folder(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def ct_with_lesion(shared_data, tmp_path_factory):
    """The small real CT with a 12 mm ball of 3000 HU in its liver: the tumor stage finds one lesion."""
    ct = sitk.ReadImage(str(shared_data / "totalseg_example/ct.nii.gz"))
    z, y, x = np.argwhere(rule_liver(ct)).mean(axis=0)
    center = ct.TransformContinuousIndexToPhysicalPoint((float(x), float(y), float(z)))
    path = tmp_path_factory.mktemp("ct") / "ct.nii.gz"
    sitk.WriteImage(insert_lesion(ct, center, 12.0).image, str(path))
    return path


def _labels(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_a_rerun_with_other_settings_redoes_the_case_and_says_why(ct_with_lesion, models, tmp_path, capsys):
    run = ["predict", str(ct_with_lesion), "-o", str(tmp_path), "--models-dir", str(models), "--threads", "1"]
    assert main(run) == 0 and (_labels(tmp_path / "ct_seg.nii.gz") == 2).any()
    capsys.readouterr()
    assert main([*run, "--liver-only"]) == 0
    err = capsys.readouterr().err
    assert "ct: redone: settings changed (" in err and "liver_only False -> True" in err
    assert not (_labels(tmp_path / "ct_seg.nii.gz") == 2).any()
    record = json.loads((tmp_path / "ct_lesions.json").read_text())
    assert record["settings"]["liver_only"] is True and list(record["settings"]["models"]) == ["liver"]
    assert main([*run, "--liver-only"]) == 0 and "ct: skipped" in capsys.readouterr().err
    assert main([*run, "--min-lesion-mm3", "1e6"]) == 0
    assert "min_lesion_mm3 50.0 -> 1000000.0" in capsys.readouterr().err
    assert json.loads((tmp_path / "ct_lesions.json").read_text())["lesions"] == []


def test_a_cohort_rerun_with_other_settings_redoes_the_case(ct_with_lesion, models, tmp_path):
    options = CaseOptions(models_dir=models, threads=1)
    assert [r["status"] for r in run_cohort([ct_with_lesion], tmp_path, options=options, progress=False)] == ["done"]
    again = run_cohort([ct_with_lesion], tmp_path, options=options, progress=False)
    assert [r["status"] for r in again] == ["skipped"]
    (row,) = run_cohort([ct_with_lesion], tmp_path, options=CaseOptions(models_dir=models, threads=1, liver_only=True),
                        progress=False)
    assert row["status"] == "done" and "settings changed (" in row["reason"] and "liver_only False -> True" in row["reason"]


def test_a_rerun_in_another_format_keeps_the_case_files_one_result(ct_with_lesion, models, tmp_path, capsys):
    run = ["predict", str(ct_with_lesion), "-o", str(tmp_path), "--models-dir", str(models), "--threads", "1"]
    assert main(run) == 0
    assert main([*run, "--format", "seg.nrrd", "--liver-only"]) == 0
    nifti, nrrd = _labels(tmp_path / "ct_seg.nii.gz"), _labels(tmp_path / "ct.seg.nrrd")
    assert np.array_equal(nifti, nrrd) and not (nifti == 2).any()  # the NIfTI was redone with the new settings
    record = json.loads((tmp_path / "ct_lesions.json").read_text())
    assert record["outputs"] == {"nifti": "ct_seg.nii.gz", "seg.nrrd": "ct.seg.nrrd"}
    capsys.readouterr()
    assert main(run) == 0  # the default settings again: redone, not "skipped" with a liver-only label map
    assert "ct: redone: settings changed" in capsys.readouterr().err
    assert (_labels(tmp_path / "ct_seg.nii.gz") == 2).any() and (_labels(tmp_path / "ct.seg.nrrd") == 2).any()


def test_a_label_map_the_recorded_run_did_not_write_is_not_skipped(ct_with_lesion, models, tmp_path, capsys):
    run = ["predict", str(ct_with_lesion), "-o", str(tmp_path), "--models-dir", str(models), "--threads", "1"]
    assert main([*run, "--format", "seg.nrrd"]) == 0
    (tmp_path / "ct_seg.nii.gz").write_bytes((tmp_path / "ct.seg.nrrd").read_bytes())  # a stray file under the name
    capsys.readouterr()
    assert main(run) == 0
    assert "ct: redone: ct_seg.nii.gz did not come from the run that wrote its lesion table" in capsys.readouterr().err


def test_a_liver_cut_off_by_the_scan_is_reported_as_a_lower_bound(shared_data, models, tmp_path, capsys):
    """The middle slices of a real CT: the liver runs off the first and the last slice."""
    ct = sitk.ReadImage(str(shared_data / "totalseg_example/ct.nii.gz"))
    z = np.flatnonzero(rule_liver(ct).any(axis=(1, 2)))
    mid = (z[0] + z[-1]) // 2
    sitk.WriteImage(ct[:, :, int(mid) - 5:int(mid) + 5], str(tmp_path / "slab.nii.gz"))
    assert main(["predict", str(tmp_path / "slab.nii.gz"), "-o", str(tmp_path / "out"), "--models-dir", str(models),
                 "--threads", "1"]) == 0
    captured = capsys.readouterr()
    record = json.loads((tmp_path / "out" / "slab_lesions.json").read_text())
    assert record["liver_cut_off_at"][:2] == ["first slice", "last slice"]
    assert any("is a lower bound" in w for w in record["warnings"]) and "is a lower bound" in captured.err
    row = next(line for line in captured.out.splitlines() if line.startswith("slab "))
    assert f">={record['liver_volume_ml']}" in row
