"""The `livertumorseg` command line, end to end on the shared real CTs."""
import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from LiverTumorSegLib.cli import main
from LiverTumorSegLib.geometry import same_grid
from LiverTumorSegLib.io import read_image


def test_predict_writes_label_map_on_the_input_grid_and_lesion_tables(shared_data, tmp_path, capsys):
    ct_path = shared_data / "totalseg_example/ct.nii.gz"
    assert main(["predict", str(ct_path), "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "liver ml" in out and str(tmp_path / "ct_seg.nii.gz") in out
    seg = sitk.ReadImage(str(tmp_path / "ct_seg.nii.gz"))
    assert same_grid(seg, sitk.ReadImage(str(ct_path)))
    table = json.loads((tmp_path / "ct_lesions.json").read_text())
    assert table["case"] == "ct" and table["liver_volume_ml"] > 0 and "stage1_liver" in table["timings_s"]
    with open(tmp_path / "ct_lesions.csv") as f:
        assert len(list(csv.reader(f))) == len(table["lesions"]) + 1


def test_existing_outputs_are_kept_unless_overwrite(shared_data, tmp_path, capsys):
    ct_path = str(shared_data / "totalseg_example/ct.nii.gz")
    assert main(["predict", ct_path, "-o", str(tmp_path), "--liver-only"]) == 0
    seg = tmp_path / "ct_seg.nii.gz"
    seg.write_bytes(b"user's edited file")
    assert main(["predict", ct_path, "-o", str(tmp_path), "--liver-only"]) == 0
    assert "ct: skipped" in capsys.readouterr().err and seg.read_bytes() == b"user's edited file"
    assert main(["predict", ct_path, "-o", str(tmp_path), "--liver-only", "--overwrite"]) == 0
    assert seg.read_bytes() != b"user's edited file"


def test_a_bad_case_is_reported_and_the_others_still_run(shared_data, tmp_path, capsys):
    cases = tmp_path / "cases"; cases.mkdir()
    (cases / "a_good.nii.gz").write_bytes((shared_data / "totalseg_example/ct.nii.gz").read_bytes())
    data = (shared_data / "totalseg_example/ct.nii.gz").read_bytes()
    (cases / "b_truncated.nii.gz").write_bytes(data[: len(data) // 3])
    (cases / "c_mr.nii.gz").write_bytes((shared_data / "totalseg_example/mr.nii.gz").read_bytes())
    out = tmp_path / "out"
    assert main(["predict", str(cases), "-o", str(out), "--liver-only"]) == 1
    err = capsys.readouterr().err
    assert "b_truncated: failed" in err and "truncated" in err
    assert "c_mr: failed" in err and "does not look like a CT" in err and "1 done, 2 failed of 3 case(s)" in err
    assert sorted(p.name for p in out.iterdir()) == ["a_good_lesions.csv", "a_good_lesions.json", "a_good_seg.nii.gz"]


def test_mr_can_be_forced(shared_data, tmp_path):
    mr = shared_data / "totalseg_example/mr.nii.gz"
    assert main(["predict", str(mr), "-o", str(tmp_path / "refused"), "--liver-only"]) == 1
    assert not (tmp_path / "refused" / "mr_seg.nii.gz").exists()
    assert main(["predict", str(mr), "-o", str(tmp_path), "--force", "--liver-only"]) == 0
    assert same_grid(sitk.ReadImage(str(tmp_path / "mr_seg.nii.gz")), sitk.ReadImage(str(mr)))
    table = json.loads((tmp_path / "mr_lesions.json").read_text())
    assert any(w.startswith("forced:") and "does not look like CT" in w for w in table["warnings"])


def test_seg_nrrd_output_and_dicom_series_input(shared_data, tmp_path):
    from ..model_fixtures import models_folder
    from ..training.conftest import write_dicom_series

    ct = sitk.ReadImage(str(shared_data / "totalseg_example/ct.nii.gz"))
    series = write_dicom_series(sitk.Cast(ct, sitk.sitkInt16), tmp_path / "series", "1.2.826.0.1.3680043.2.1125.99")
    models = models_folder(tmp_path / "models")  # rule models: fast, and the answer does not depend on training
    assert main(["predict", str(series), "-o", str(tmp_path / "out"), "--format", "seg.nrrd", "--models-dir", str(models)]) == 0
    assert main(["predict", str(shared_data / "totalseg_example/ct.nii.gz"), "-o", str(tmp_path / "nii"), "--models-dir", str(models)]) == 0
    path = tmp_path / "out" / "series.seg.nrrd"
    header = path.read_bytes().split(b"\n\n")[0].decode()
    assert "Segment0_Name:=Liver" in header and "Segment1_Name:=Liver tumor" in header
    seg = sitk.ReadImage(str(path))
    assert same_grid(seg, read_image(series), tol=1e-4) and np.allclose(seg.GetSpacing(), ct.GetSpacing(), atol=1e-4)
    from_nifti = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "nii" / "ct_seg.nii.gz")))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(seg), from_nifti)
    assert (from_nifti == 1).sum() > 1000


def test_demo_ct_is_built_in(tmp_path):
    assert main(["predict", "--demo", "-o", str(tmp_path), "--model-set", "fast"]) == 0
    assert (tmp_path / "demo_ct_seg.nii.gz").is_file()


def test_info_lists_models_and_providers(capsys):
    assert main(["info", "-v"]) == 0
    out = capsys.readouterr().out
    assert "CPUExecutionProvider" in out and "liver:" in out and "tumor:" in out and "devices:" in out


def test_evaluate_writes_per_case_metrics_and_a_summary(shared_data, tmp_path, capsys):
    ref = shared_data / "lits117_roi/label.nii.gz"
    pred = tmp_path / "label.nii.gz"
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(ref)))
    arr[arr == 2] = 1  # a prediction that misses every tumor
    img = sitk.GetImageFromArray(arr); img.CopyInformation(sitk.ReadImage(str(ref)))
    sitk.WriteImage(img, str(pred))
    assert main(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "eval")]) == 0
    rows = list(csv.DictReader(open(next((tmp_path / "eval").glob("*.csv")))))
    assert float(rows[0]["liver_dice"]) == pytest.approx(1.0) and float(rows[0]["tumor_dice"]) == 0.0


def test_ctrl_c_mid_run_leaves_no_output(shared_data, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "LiverTumorSegLib.cli", "-v", "predict", str(shared_data / "chaos_ct3/ct.nii.gz"),
           "-o", str(out), "--threads", "1"]
    # The child gets the default SIGINT handler even when pytest runs as a background job (SIGINT ignored).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stderr:  # interrupt once the tumor stage has started
        if "stage 2" in line:
            break
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err
    assert not out.exists() or os.listdir(out) == []
