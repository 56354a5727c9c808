"""Follow-up comparison on pairs with known truth built from a real CT with expert lesions (lits117_roi).

Label maps are given directly (the "earlier run's outputs" path), so no network runs here.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk

from LiverTumorSegLib import compare, errors
from LiverTumorSegLib.followup import CompareConfig, RegistrationConfig, RegistrationError, write_comparison
from LiverTumorSegLib.followup.outputs import comparison_paths
from Testing.lib.followup_pairs import edit, lesion_ids, load, moved

AFFINE_ONLY = CompareConfig(registration=RegistrationConfig(deformable=False))
CHANGES = {3: "gone", 10: "grow", 5: "shrink", 7: "cut"}


@pytest.fixture(scope="module")
def case(shared_data):
    """(CT, labels) of lits117_roi: 128^3, 1 mm, expert liver and lesions."""
    return load(shared_data / "lits117_roi")


@pytest.fixture(scope="module")
def edited(case):
    """(follow-up CT, labels, tumor voxels after per changed lesion) made from the baseline by CHANGES + a new tumor."""
    return edit(*case, CHANGES, new_tumor_mm=8.0)


@pytest.fixture(scope="module")
def itself(case):
    """The CT compared with itself."""
    ct, labels = case
    return compare(ct, ct, baseline_labels=labels, followup_labels=labels, config=AFFINE_ONLY)


@pytest.fixture(scope="module")
def edited_moved(case, edited):
    """(comparison, follow-up labels) of the baseline with the edited follow-up moved and resampled."""
    ct, labels = case
    f_ct, f_labels = moved(*edited[:2])
    return compare(ct, f_ct, baseline_labels=labels, followup_labels=f_labels, config=AFFINE_ONLY), f_labels


def _by_baseline(result) -> dict[int, dict]:
    """Change rows keyed by their (first) baseline lesion id."""
    return {int(r["baseline_id"].split(";")[0]): r for r in result.rows() if r["baseline_id"]}


def test_ct_against_itself_is_all_stable_with_zero_change(itself):
    result = itself
    rows = result.rows()
    assert len(rows) == 50  # the lesions of >= 0.05 ml in the expert labels
    assert {r["status"] for r in rows} == {"stable"}
    assert all(r["change_ml"] == 0 and r["baseline_id"] == r["followup_id"] for r in rows)
    assert result.registration.liver_dice > 0.999
    assert result.summary()["recist_liver"]["category"] == "SD"


def test_same_ct_moved_and_resampled_keeps_every_lesion_stable(case):
    ct, labels = case
    f_ct, f_labels = moved(ct, labels)
    result = compare(ct, f_ct, baseline_labels=labels, followup_labels=f_labels)  # deformable stage included
    counts = result.summary()["status_counts"]
    assert counts["stable"] == len(result.tracks) >= 45, counts
    assert result.registration.liver_dice > 0.97 and result.registration.liver_assd_mm < 1.5
    assert not result.warnings
    big = [r for r in result.rows() if r["baseline_ml"] >= 1.0]
    assert all(abs(r["change_percent"]) < 10 for r in big), [(r["baseline_id"], r["change_percent"]) for r in big]


def test_painted_grown_shrunk_cut_and_new_lesions_get_their_status(case, edited):
    ct, labels = case
    f_ct, f_labels, after = edited
    result = compare(ct, f_ct, baseline_labels=labels, followup_labels=f_labels, config=AFFINE_ONLY)
    rows = _by_baseline(result)
    assert {i: rows[i]["status"] for i in CHANGES} == {3: "disappeared", 10: "grown", 5: "shrunk", 7: "split"}
    before = np.bincount(lesion_ids(sitk.GetArrayFromImage(labels)).ravel())
    for lesion in (10, 5):  # on the same grid the measured change is the known change, to the voxel
        assert rows[lesion]["followup_ml"] == pytest.approx(after[lesion] / 1000, abs=1e-3)
        assert rows[lesion]["change_percent"] == pytest.approx(100 * (after[lesion] - before[lesion]) / before[lesion], abs=0.1)
    new = [r for r in result.rows() if r["status"] == "new"]
    assert len(new) == 1 and new[0]["followup_ml"] > 0.5
    others = [r for i, r in rows.items() if i not in CHANGES]
    assert {r["status"] for r in others} == {"stable"}
    assert result.summary()["recist_liver"]["category"] == "PD"  # a new lesion


def test_statuses_survive_moving_and_resampling_the_follow_up(edited_moved):
    result = edited_moved[0]
    rows = _by_baseline(result)
    assert {i: rows[i]["status"] for i in CHANGES} == {3: "disappeared", 10: "grown", 5: "shrunk", 7: "split"}
    assert result.summary()["status_counts"]["new"] == 1
    assert result.summary()["status_counts"]["disappeared"] == 1


def test_reversed_split_is_a_merge(case, edited):
    ct, labels = case
    f_ct, f_labels, _ = edited
    result = compare(f_ct, ct, baseline_labels=f_labels, followup_labels=labels, config=AFFINE_ONLY)
    merged = [r for r in result.rows() if r["status"] == "merged"]
    assert len(merged) == 1 and len(merged[0]["baseline_id"].split(";")) >= 2
    counts = result.summary()["status_counts"]
    assert (counts["new"], counts["disappeared"]) == (1, 1)  # the painted lesion is new, the synthetic one gone


def test_track_maps_give_one_lesion_the_same_id_at_both_times(edited_moved):
    result, f_labels = edited_moved
    base = sitk.GetArrayFromImage(result.baseline_tracks)
    follow = sitk.GetArrayFromImage(result.followup_tracks)
    assert result.followup_tracks.GetSize() == f_labels.GetSize()  # the follow-up's own grid
    warped = sitk.GetArrayFromImage(sitk.Resample(result.followup_tracks, result.baseline_tracks, result.registration.transform,
                                                  sitk.sitkNearestNeighbor))
    for track in (t.id for t in result.tracks if t.status == "stable" and t.baseline[0].volume_ml > 1):
        inside = warped[base == track]
        assert np.mean(inside == track) > 0.8
    assert set(np.unique(follow)) - {0} == {t.id for t in result.tracks if t.followup}


def test_outputs_written_once_and_never_overwritten(itself, tmp_path):
    result = itself
    paths = write_comparison(result, tmp_path, "p1")
    csv = paths["csv"].read_text().splitlines()
    assert csv[0].startswith("track_id,status,baseline_id,followup_id,baseline_ml,followup_ml,change_ml,change_percent")
    assert len(csv) == 1 + len(result.tracks)
    assert sitk.ReadTransform(str(paths["transform"])) is not None
    before = {p: p.stat().st_mtime_ns for p in paths.values()}
    with pytest.raises(errors.OutputExistsError):
        write_comparison(result, tmp_path, "p1")
    assert before == {p: p.stat().st_mtime_ns for p in paths.values()}


def test_follow_up_without_liver_is_refused(case):
    ct, labels = case
    empty = np.zeros(sitk.GetArrayViewFromImage(labels).shape, np.uint8)
    with pytest.raises(errors.InvalidInputError, match="liver in its field of view"):
        compare(ct, ct, baseline_labels=labels, followup_labels=empty)


def test_labels_on_another_grid_are_refused(case):
    ct, labels = case
    _, other = moved(ct, labels)
    with pytest.raises(errors.InvalidInputError, match="grid"):
        compare(ct, ct, baseline_labels=labels, followup_labels=other)


def test_registration_below_the_failure_threshold_raises(case):
    ct, labels = case
    f_ct, f_labels = moved(ct, labels)
    strict = replace(AFFINE_ONLY, alignment=replace(AFFINE_ONLY.alignment, fail_liver_dice=0.999))
    with pytest.raises(RegistrationError, match="registration failed"):
        compare(ct, f_ct, baseline_labels=labels, followup_labels=f_labels, config=strict)


def _dicom_copy(src, dst, patient_id: str):
    """The 3-slice DICOM series of dcmqi_ct3slice copied with another PatientID."""
    import pydicom

    dst.mkdir()
    for f in sorted(src.iterdir()):
        ds = pydicom.dcmread(f)
        ds.PatientID = patient_id
        ds.save_as(dst / f.name)
    return dst


def test_two_patients_by_dicom_tags_are_refused_unless_forced(shared_data, tmp_path):
    a = _dicom_copy(shared_data / "dcmqi_ct3slice" / "dicom", tmp_path / "a", "PAT-A")
    b = _dicom_copy(shared_data / "dcmqi_ct3slice" / "dicom", tmp_path / "b", "PAT-B")
    size = sitk.ReadImage(str(shared_data / "dcmqi_ct3slice" / "liver_seg.nrrd")).GetSize()
    labels = np.zeros(size[::-1], np.uint8)
    with pytest.raises(errors.InvalidInputError, match="different patients.*PatientID"):
        compare(a, b, baseline_labels=labels, followup_labels=labels)
    with pytest.raises(errors.InvalidInputError, match="liver in its field of view"):  # forced: goes on to the next check
        compare(a, b, baseline_labels=labels, followup_labels=labels, config=CompareConfig(force=True))
    assert comparison_paths(tmp_path, "x")["csv"].exists() is False


def test_other_contrast_and_a_cut_field_of_view_give_out_of_view_not_disappeared(case):
    ct, labels = case
    f_ct, f_labels = moved(ct, labels)
    f_ct = sitk.Cast(sitk.Sqrt(sitk.Clamp(f_ct, sitk.sitkFloat32, -1000, 3000) + 1001.0) * 40.0 - 1300.0, sitk.sitkFloat32)
    keep = f_ct.GetSize()[2] // 2  # the follow-up covers only the lower half of the baseline's slices
    f_ct, f_labels = f_ct[:, :, :keep], f_labels[:, :, :keep]
    result = compare(ct, f_ct, baseline_labels=labels, followup_labels=f_labels, config=AFFINE_ONLY)
    counts = result.summary()["status_counts"]
    assert counts["out of view"] > 5 and counts["disappeared"] == 0 and counts["new"] == 0, counts
    assert counts["stable"] > 5 and counts["stable"] + counts["out of view"] == len(result.tracks)
    assert result.registration.liver_dice > 0.95  # measured where both CTs have voxels
    assert result.summary()["recist_liver"]["category"] == "NE"  # a target lesion is out of the follow-up's view


def test_registration_recovers_a_known_rigid_move(case):
    from LiverTumorSegLib.followup.registration import register
    from Testing.lib.followup_pairs import move_transform

    ct, labels = case
    f_ct, f_labels = moved(ct, labels)
    reg = register(ct, labels, f_ct, f_labels, RegistrationConfig(deformable=False))
    truth = move_transform(ct)  # follow-up point -> baseline point; reg.transform: baseline point -> follow-up point
    liver = np.argwhere(sitk.GetArrayFromImage(labels) > 0)[::5000, ::-1].astype(float)
    points = [ct.TransformContinuousIndexToPhysicalPoint(p) for p in liver]
    errors_mm = [np.linalg.norm(np.subtract(truth.TransformPoint(reg.transform.TransformPoint(p)), p)) for p in points]
    assert np.percentile(errors_mm, 95) < 1.5, np.percentile(errors_mm, 95)


def test_register_refuses_labels_without_liver(case):
    from LiverTumorSegLib.followup.registration import register

    ct, labels = case
    with pytest.raises(RegistrationError, match="follow-up labels hold no liver"):
        register(ct, labels, ct, labels * 0)


def test_an_unreadable_earlier_run_record_is_a_clear_error(case, tmp_path):
    ct, labels = case
    (tmp_path / "ct_lesions.json").write_text("{not json")
    with pytest.raises(errors.InvalidInputError, match="cannot read the earlier run's record"):
        compare(tmp_path, ct, followup_labels=labels)
