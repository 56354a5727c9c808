"""Bad input gets a clear, specific error; outputs are never overwritten silently or left half-written."""
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from LiverTumorSegLib.config import InputCheckConfig
from LiverTumorSegLib.errors import InvalidInputError, LiverTumorSegError, NotCTError, OutputExistsError
from LiverTumorSegLib.io import case_name, expand_inputs, read_image, seg_nrrd_image, write_image
from LiverTumorSegLib.validation import check_ct

CHECKS = InputCheckConfig()


def _check(img: sitk.Image, cfg: InputCheckConfig = CHECKS) -> list[str]:
    return check_ct(img, sitk.GetArrayViewFromImage(img), cfg)


def test_real_cts_pass_the_checks(shared_data):
    for name in ["totalseg_example/ct.nii.gz", "chaos_ct3/ct.nii.gz", "lits117_roi/ct.nii.gz"]:
        assert _check(read_image(shared_data / name)) == []


def test_mr_is_refused_as_not_ct_unless_forced(shared_data):
    mr = read_image(shared_data / "totalseg_example/mr.nii.gz")
    with pytest.raises(NotCTError, match="does not look like a CT.*force=True to segment anyway"):
        _check(mr)
    warnings = _check(mr, InputCheckConfig(force=True))
    assert warnings and "forced" in warnings[0]


def test_ct_without_rescale_intercept_is_named_as_such(shared_data):
    ct = read_image(shared_data / "totalseg_example/ct.nii.gz")
    shifted = sitk.Cast(sitk.Clamp(ct, lowerBound=-1024) + 1024, sitk.sitkUInt16)
    with pytest.raises(NotCTError, match="rescale intercept"):
        _check(shifted)


def test_a_2d_image_is_refused_with_a_hint():
    with pytest.raises(InvalidInputError, match="3-D.*single slice"):
        _check(sitk.Image(64, 64, sitk.sitkInt16))


def test_a_multichannel_image_is_refused():
    with pytest.raises(InvalidInputError, match="3 components"):
        _check(sitk.Image([40, 40, 40], sitk.sitkVectorFloat32, 3))


def test_a_4d_image_is_refused():
    with pytest.raises(InvalidInputError, match="4-D"):
        _check(sitk.Image([10, 10, 10, 3], sitk.sitkInt16))


def test_nan_voxels_are_refused(phantom):
    arr = sitk.GetArrayFromImage(phantom).astype(np.float32)
    arr[3, 4, 5] = np.nan
    arr[4, 4, 5] = np.inf
    img = sitk.GetImageFromArray(arr); img.CopyInformation(phantom)
    with pytest.raises(InvalidInputError, match="2 NaN or infinite"):
        _check(img)


def test_a_tiny_volume_is_refused():
    img = sitk.Image(6, 6, 6, sitk.sitkInt16) - 1000
    with pytest.raises(InvalidInputError, match="too small"):
        _check(img)


def test_a_huge_volume_is_refused_from_its_header_before_reading(tmp_path):
    (tmp_path / "huge.raw").write_bytes(b"\0" * 1024)
    (tmp_path / "huge.nhdr").write_text(
        "NRRD0004\ntype: short\ndimension: 3\nsizes: 2048 2048 2048\nspace: left-posterior-superior\n"
        "space directions: (1,0,0) (0,1,0) (0,0,1)\nspace origin: (0,0,0)\nencoding: raw\nendian: little\ndata file: huge.raw\n")
    with pytest.raises(InvalidInputError, match="too large: 8,589,934,592 voxels"):
        read_image(tmp_path / "huge.nhdr")


def test_empty_missing_and_truncated_files_are_refused(tmp_path, shared_data):
    empty = tmp_path / "empty.nii.gz"; empty.write_bytes(b"")
    with pytest.raises(InvalidInputError, match="empty"):
        read_image(empty)
    with pytest.raises(InvalidInputError, match="not found"):
        read_image(tmp_path / "missing.nii.gz")
    data = (shared_data / "totalseg_example/ct.nii.gz").read_bytes()
    cut = tmp_path / "cut.nii.gz"; cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match="corrupt.*truncated"):
        read_image(cut)
    sitk.WriteImage(read_image(shared_data / "totalseg_example/ct.nii.gz"), str(tmp_path / "full.nii"))
    raw = (tmp_path / "full.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(raw[:-1000])
    with pytest.raises(InvalidInputError, match="truncated"):
        read_image(tmp_path / "cut.nii")
    junk = tmp_path / "junk.nrrd"; junk.write_bytes(b"hello, I am not an image\n" * 10)
    with pytest.raises(InvalidInputError, match="cannot read"):
        read_image(junk)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha", ".mhd"])
def test_every_supported_format_reads_with_its_geometry(tmp_path, phantom, suffix):
    path = tmp_path / f"case{suffix}"
    sitk.WriteImage(phantom, str(path))
    img = read_image(path)
    np.testing.assert_allclose(img.GetSpacing(), phantom.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(img.GetOrigin(), phantom.GetOrigin(), atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(img), sitk.GetArrayViewFromImage(phantom))
    assert case_name(path) == "case"


def test_a_dicom_series_folder_reads_as_one_volume(shared_data):
    img = read_image(shared_data / "dcmqi_ct3slice/dicom")
    assert img.GetSize() == (512, 512, 3)
    np.testing.assert_allclose(img.GetSpacing(), (0.8105, 0.8105, 1.0), atol=1e-3)


def test_folders_expand_to_their_cases(tmp_path, shared_data):
    (tmp_path / "a.nii.gz").write_bytes(b"x"); (tmp_path / "b.nrrd").write_bytes(b"x"); (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in expand_inputs([tmp_path])] == ["a.nii.gz", "b.nrrd"]
    patients = tmp_path / "patients"; (patients / "p1").mkdir(parents=True)
    shutil.copytree(shared_data / "dcmqi_ct3slice/dicom", patients / "p2")
    (patients / "p1" / "x.dcm").write_bytes(b"x")
    assert [p.name for p in expand_inputs([patients])] == ["p1", "p2"]


def test_outputs_are_never_overwritten_silently_and_no_temp_files_remain(tmp_path, phantom):
    out = tmp_path / "seg.nii.gz"
    write_image(phantom, out)
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_image(phantom + 1, out)
    assert out.read_bytes() == before
    write_image(phantom + 1, out, overwrite=True)
    assert out.read_bytes() != before
    assert os.listdir(tmp_path) == ["seg.nii.gz"]


def test_an_unwritable_output_folder_gives_a_clear_error(tmp_path, phantom):
    """A file standing where the folder should be (chmod does not stop root, who runs CI)."""
    (tmp_path / "blocker").write_text("I am a file")
    with pytest.raises(LiverTumorSegError, match="cannot write to output folder"):
        write_image(phantom, tmp_path / "blocker" / "x.nii.gz")


def test_seg_nrrd_carries_slicer_segment_names_colours_and_terminology(tmp_path, phantom):
    labels = sitk.Cast(phantom > 60, sitk.sitkUInt8) + sitk.Cast(phantom > 90, sitk.sitkUInt8)
    path = write_image(seg_nrrd_image(labels), tmp_path / "c.seg.nrrd")
    header = path.read_bytes().split(b"\n\n")[0].decode()
    assert "Segment0_Name:=Liver" in header and "Segment1_Name:=Liver tumor" in header
    assert "Segment1_LabelValue:=2" in header and "SCT^108369006^Neoplasm" in header
    assert "Segment0_Color:=0.866667 0.509804 0.396078" in header
    back = read_image(path)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(labels))
