"""`livertumorseg compare` end to end: given label maps, an earlier predict run's outputs, and bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from LiverTumorSegLib.cli import main
from Testing.lib.followup_pairs import moved, write_painted_over_pair


@pytest.fixture(scope="module")
def pair_files(shared_data, tmp_path_factory):
    """lits117_roi as baseline, and a follow-up with lesion 3 painted over, moved and resampled, as files."""
    return write_painted_over_pair(shared_data / "lits117_roi", tmp_path_factory.mktemp("pair"))


def test_compare_with_given_labels_writes_the_table_maps_and_report(pair_files, tmp_path, capsys):
    p = pair_files
    args = ["compare", str(p["baseline"]), str(p["followup"]), "--baseline-labels", str(p["baseline_labels"]),
            "--followup-labels", str(p["followup_labels"]), "-o", str(tmp_path), "--no-deformable"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "disappeared" in out and "RECIST 1.1-style liver assessment: PR" not in out and "not a radiological read" in out
    report = json.loads((tmp_path / "followup_vs_baseline_lesion_changes.json").read_text())
    assert report["status_counts"]["disappeared"] == 1 and report["status_counts"]["new"] == 0
    assert report["registration"]["liver_dice"] > 0.95
    gone = [r for r in report["lesions"] if r["status"] == "disappeared"]
    assert gone[0]["baseline_id"] == "3" and gone[0]["followup_ml"] == 0
    follow_map = sitk.ReadImage(str(tmp_path / "followup_vs_baseline_followup_tracks.nii.gz"))
    assert follow_map.GetSize() == sitk.ReadImage(str(p["followup"])).GetSize()
    assert int(gone[0]["track_id"]) not in np.unique(sitk.GetArrayFromImage(follow_map))
    written = {f: f.stat().st_mtime_ns for f in tmp_path.iterdir()}
    with pytest.raises(SystemExit):  # a usage error before any work: outputs exist
        main(args)
    assert "--overwrite" in capsys.readouterr().err
    assert written == {f: f.stat().st_mtime_ns for f in tmp_path.iterdir()}


def test_no_liver_in_the_follow_up_is_a_clear_error_and_writes_nothing(pair_files, tmp_path, capsys):
    p = pair_files
    empty = sitk.ReadImage(str(p["followup_labels"])) * 0
    sitk.WriteImage(empty, str(tmp_path / "empty.nii.gz"))
    out = tmp_path / "out"
    assert main(["compare", str(p["baseline"]), str(p["followup"]), "--baseline-labels", str(p["baseline_labels"]),
                 "--followup-labels", str(tmp_path / "empty.nii.gz"), "-o", str(out)]) == 2
    assert "0.0 ml of liver" in capsys.readouterr().err
    assert not out.exists()


def test_earlier_predict_outputs_and_a_ct_segmented_on_the_fly(shared_data, tmp_path, capsys):
    """The one test that runs networks (fast set, one thread): a predict run's folder as baseline, a CT as follow-up."""
    ct_path = shared_data / "totalseg_example" / "ct.nii.gz"
    assert main(["predict", str(ct_path), "-o", str(tmp_path / "base"), "--threads", "1", "--model-set", "fast"]) == 0
    ct = sitk.ReadImage(str(ct_path))
    f_ct, _ = moved(ct, sitk.Cast(ct > 0, sitk.sitkUInt8), angles=(0.0, 0.0, 0.08), shift=(5.0, -3.0, 0.0),
                    spacing=(3.2, 3.2, 3.0))
    sitk.WriteImage(sitk.Cast(f_ct, sitk.sitkInt16), str(tmp_path / "later.nii.gz"))
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "later.nii.gz"), "-o", str(tmp_path / "cmp"),
                 "--model-set", "fast", "--threads", "1", "--no-deformable"]) == 0
    report = json.loads((tmp_path / "cmp" / "later_vs_base_lesion_changes.json").read_text())
    assert report["baseline"]["input"] == str(ct_path) and not report["baseline"]["segmented_here"]  # the earlier run's
    assert report["followup"]["segmented_here"]
    assert report["registration"]["liver_dice"] > 0.85
    assert not [r for r in report["lesions"] if r["status"] in ("new", "disappeared", "grown", "shrunk")]
