"""DICOM SEG and SR export for PACS: written by highdicom, referencing the source CT instances, decoding back
onto the CT grid voxel for voxel, organised like the reference SEG of the shared data, valid for dciodvfy;
the SR's measurements match the lesion table and reference the SEG."""
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LiverTumorSegLib import Geometry, SegmentationResult
from LiverTumorSegLib.cli import main
from LiverTumorSegLib.dicom_series import write_ct_series
from LiverTumorSegLib.dicom_seg import read_dicom_seg_labels, write_dicom_seg
from LiverTumorSegLib.errors import InvalidInputError
from LiverTumorSegLib.geometry import same_grid
from LiverTumorSegLib.io import read_image
from LiverTumorSegLib.terminology import SEGMENTS

MODELS = {"liver": {"name": "livertumorseg-liver", "version": "0.1.0"},
          "tumor": {"name": "livertumorseg-tumor", "version": "0.1.0"}}


@pytest.fixture(scope="module")
def dcmqi(shared_data):
    """The 3-slice real CT DICOM series, its reference liver label map, and the reference DICOM SEG."""
    folder = shared_data / "dcmqi_ct3slice"
    return folder / "dicom", folder / "liver_seg.nrrd", folder / "liver.dcm"


def _result_on(series, labels: np.ndarray, models=MODELS) -> SegmentationResult:
    return SegmentationResult(labels=labels, geometry=Geometry.of(read_image(series)), models=models)


def _dcmqi_labels_with_a_tumor(label_path) -> np.ndarray:
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(label_path))).astype(np.uint8)
    liver = np.argwhere(labels[1] == 1)
    y, x = liver[len(liver) // 2]
    labels[1, y - 5:y + 5, x - 5:x + 5] = 2  # a small "tumor" inside the liver on the middle slice
    return labels


def test_seg_references_the_source_instances_and_decodes_back_exactly(dcmqi, tmp_path):
    series, label_path, _ = dcmqi
    labels = _dcmqi_labels_with_a_tumor(label_path)
    path = write_dicom_seg(_result_on(series, labels), series, tmp_path / "case_seg.dcm")
    seg = pydicom.dcmread(path)
    sources = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in series.iterdir()}
    referenced = {item.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for item in s.ReferencedInstanceSequence}
    assert referenced == sources
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == pydicom.dcmread(next(series.iterdir())).SeriesInstanceUID
    np.testing.assert_array_equal(read_dicom_seg_labels(path, series), labels)


def test_seg_segments_carry_the_slicer_codes_colours_and_the_models(dcmqi, tmp_path):
    import highdicom as hd

    series, label_path, _ = dcmqi
    seg = hd.seg.segread(str(write_dicom_seg(_result_on(series, _dcmqi_labels_with_a_tumor(label_path)), series,
                                             tmp_path / "c_seg.dcm")))
    for number, spec in enumerate(SEGMENTS, start=1):
        description = seg.get_segment_description(number)
        assert description.segment_label == spec.name
        assert description.segmented_property_type.value == spec.type.value
        assert description.segmented_property_category.value == spec.category.value
        assert description.algorithm_type.value == "AUTOMATIC"
        stage = "liver" if number == 1 else "tumor"
        assert description.algorithm_identification[0].AlgorithmName == MODELS[stage]["name"]
        assert description.algorithm_identification[0].AlgorithmVersion == MODELS[stage]["version"]
        colour = hd.color.CIELabColor.from_dicom_value(description.RecommendedDisplayCIELabValue).to_rgb()
        assert tuple(colour) == pytest.approx(spec.color_rgb, abs=1)


def test_seg_is_organised_like_the_reference_seg_of_the_shared_data(dcmqi, tmp_path):
    series, label_path, reference_path = dcmqi
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(label_path))).astype(np.uint8)
    liver_only = _result_on(series, labels, {"liver": MODELS["liver"]})  # as the reference: one Liver segment
    ours = pydicom.dcmread(write_dicom_seg(liver_only, series, tmp_path / "c_seg.dcm"))
    reference = pydicom.dcmread(reference_path)
    for keyword in ("SOPClassUID", "Modality", "SegmentationType", "Rows", "Columns", "BitsAllocated", "FrameOfReferenceUID"):
        assert ours[keyword].value == reference[keyword].value, keyword
    pointers = [(d.DimensionIndexPointer, d.FunctionalGroupPointer) for d in ours.DimensionIndexSequence]
    assert pointers == [(d.DimensionIndexPointer, d.FunctionalGroupPointer) for d in reference.DimensionIndexSequence]
    shared, ref_shared = ours.SharedFunctionalGroupsSequence[0], reference.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == pytest.approx(
        [float(v) for v in ref_shared.PixelMeasuresSequence[0].PixelSpacing])
    assert ours.SegmentSequence[0].SegmentLabel == reference.SegmentSequence[0].SegmentLabel == "Liver"
    assert ours.NumberOfFrames == reference.NumberOfFrames  # liver only: one frame per source slice
    assert np.array_equal(read_dicom_seg_labels(reference_path, series, trust_references=True), labels), "the reference decodes like ours"


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy not installed (apt-get install dicom3tools)")
def test_seg_passes_dciodvfy(dcmqi, tmp_path):
    series, label_path, _ = dcmqi
    path = write_dicom_seg(_result_on(series, _dcmqi_labels_with_a_tumor(label_path)), series, tmp_path / "c_seg.dcm")
    report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True).stderr
    assert "Segmentation" in report and "Error" not in report, report


def test_seg_of_another_grid_or_a_non_dicom_source_is_refused(dcmqi, tmp_path):
    series, label_path, _ = dcmqi
    with pytest.raises(InvalidInputError, match="not on the grid"):
        write_dicom_seg(_result_on(series, np.zeros((4, 512, 512), np.uint8)), series, tmp_path / "x.dcm")
    with pytest.raises(InvalidInputError, match="no DICOM instances to reference"):
        write_dicom_seg(_result_on(series, np.zeros((3, 512, 512), np.uint8)), label_path, tmp_path / "x.dcm")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def chaos_series(shared_data, tmp_path_factory):
    """CHAOS CT patient 3, every other slice down to the liver (0.73 x 0.73 x 4 mm, 512 x 512 x 30), as DICOM."""
    ct = sitk.ReadImage(str(shared_data / "chaos_ct3/ct.nii.gz"))[:, :, 18::2]
    return write_ct_series(ct, tmp_path_factory.mktemp("chaos") / "chaos_dicom")


def test_predict_dicom_seg_round_trips_the_nifti_label_map_of_the_same_run(chaos_series, tmp_path, capsys):
    from ..model_fixtures import models_folder

    out, models = tmp_path / "out", models_folder(tmp_path / "models")  # rule models: the export does not depend on them
    assert main(["predict", str(chaos_series), "-o", str(out), "--format", "nifti,dicom-seg", "--threads", "2",
                 "--models-dir", str(models)]) == 0
    printed = capsys.readouterr().out
    assert str(out / "chaos_dicom_seg.dcm") in printed and str(out / "chaos_dicom_sr.dcm") in printed
    nifti = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "chaos_dicom_seg.nii.gz")))
    assert (nifti == 1).sum() > 10_000, "no liver found: the round trip would prove little"
    np.testing.assert_array_equal(read_dicom_seg_labels(out / "chaos_dicom_seg.dcm", chaos_series), nifti)
    seg = pydicom.dcmread(out / "chaos_dicom_seg.dcm")
    sources = sorted(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in chaos_series.iterdir())
    assert sorted(i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == sources
    assert seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "test-rule-liver"
    evidence = pydicom.dcmread(out / "chaos_dicom_sr.dcm").CurrentRequestedProcedureEvidenceSequence
    assert seg.SOPInstanceUID in {i.ReferencedSOPInstanceUID for study in evidence
                                  for s in study.ReferencedSeriesSequence for i in s.ReferencedSOPSequence}


def test_predict_dicom_seg_refuses_a_non_dicom_input_clearly(shared_data, tmp_path, capsys):
    ct = shared_data / "totalseg_example/ct.nii.gz"
    assert main(["predict", str(ct), "-o", str(tmp_path), "--format", "dicom-seg", "--liver-only"]) == 1
    assert "needs a DICOM series" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def _measured_result(series, labels) -> SegmentationResult:
    """A result with the library's own lesion measurements of `labels` on the series' CT."""
    from LiverTumorSegLib.lesions import measure_lesions, organ_volumes_ml

    ct = read_image(series)
    geometry = Geometry.of(ct)
    liver_ml, tumor_ml = organ_volumes_ml(labels, geometry)
    return SegmentationResult(labels=labels, geometry=geometry, lesions=measure_lesions(labels, sitk.GetArrayFromImage(ct), geometry),
                              liver_volume_ml=liver_ml, tumor_volume_ml=tumor_ml, models=MODELS)


def test_sr_reports_each_segment_and_lesion_and_references_the_seg(dcmqi, tmp_path):
    import highdicom as hd

    from LiverTumorSegLib.dicom_sr import write_dicom_sr

    series, label_path, _ = dcmqi
    labels = _dcmqi_labels_with_a_tumor(label_path)
    labels[0, 200:206, 300:306] = 2  # a second lesion
    result = _measured_result(series, labels)
    assert len(result.lesions) == 2
    seg_path = write_dicom_seg(result, series, tmp_path / "c_seg.dcm")
    sr_path = write_dicom_sr(result, series, seg_path, tmp_path / "c_sr.dcm")
    seg_uid = pydicom.dcmread(seg_path).SOPInstanceUID
    report = hd.sr.srread(str(sr_path)).content
    segments = report.get_volumetric_roi_measurement_groups()
    assert [g.tracking_identifier for g in segments] == ["Liver", "Liver tumor"]
    assert {g.referenced_segment.referenced_sop_instance_uid for g in segments} == {seg_uid}
    assert [g.referenced_segment.referenced_segment_numbers for g in segments] == [[1], [2]]
    tumor_ml = segments[1].get_measurements()[0]
    assert tumor_ml.value == pytest.approx(result.tumor_volume_ml, abs=1e-3) and tumor_ml.unit.value == "ml"
    lesions = report.get_image_measurement_groups()
    assert [g.tracking_identifier for g in lesions] == ["Lesion 1", "Lesion 2"]
    for group, lesion in zip(lesions, result.lesions):
        values = {m.name.meaning: m.value for m in group.get_measurements()}
        assert values == pytest.approx({"Volume": lesion.volume_ml, "Long axis": lesion.longest_axial_diameter_mm,
                                        "Mean Attenuation Coefficient": lesion.mean_hu})
    if shutil.which("dciodvfy"):
        check = subprocess.run(["dciodvfy", str(sr_path)], capture_output=True, text=True).stderr
        assert "Comprehensive3DSR" in check and "Error" not in check, check


def test_sr_says_the_liver_volume_is_a_lower_bound_only_when_the_liver_is_cut_off(dcmqi, tmp_path):
    import highdicom as hd

    from LiverTumorSegLib.dicom_sr import LIVER_CUT_OFF, write_dicom_sr

    series, label_path, _ = dcmqi
    cut = _dcmqi_labels_with_a_tumor(label_path)  # 3 slices: the liver runs through the first and the last
    inside = np.zeros_like(cut)
    inside[1, 200:300, 200:300] = 1  # the middle slice only, away from the in-plane edges
    evaluations = []
    for name, labels in (("cut", cut), ("inside", inside)):
        result = _measured_result(series, labels)
        seg_path = write_dicom_seg(result, series, tmp_path / f"{name}_seg.dcm")
        report = hd.sr.srread(str(write_dicom_sr(result, series, seg_path, tmp_path / f"{name}_sr.dcm"))).content
        liver = report.get_volumetric_roi_measurement_groups()[0]
        evaluations.append([item.ConceptCodeSequence[0].CodeMeaning for item in liver[0].ContentSequence
                            if item.ValueType == "CODE" and item.ConceptNameCodeSequence[0].CodeValue == "121071"])
    assert _measured_result(series, cut).liver_cut_off()[:2] == ["first slice", "last slice"]
    assert LIVER_CUT_OFF[2] in evaluations[0] and LIVER_CUT_OFF[2] not in evaluations[1]


def test_a_shared_ct_written_as_a_dicom_series_reads_back_and_gets_a_dicom_seg(shared_data, tmp_path, capsys):
    """The README's one-liner: a NIfTI sample as a DICOM CT series (with a Frame of Reference), then --format dicom-seg."""
    from LiverTumorSegLib.dicom_series import main as to_dicom

    from ..model_fixtures import models_folder

    ct_path, series = shared_data / "totalseg_example/ct.nii.gz", tmp_path / "ct_dicom"
    assert to_dicom([str(ct_path), str(series)]) == 0 and to_dicom([str(ct_path), str(series)]) == 2  # never into a full folder
    files = sorted(series.iterdir())
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert len({h.FrameOfReferenceUID for h in headers}) == 1 and headers[0].FrameOfReferenceUID
    assert {h.SOPClassUID for h in headers} == {"1.2.840.10008.5.1.4.1.1.2"} and len({h.SeriesInstanceUID for h in headers}) == 1
    ct, back = sitk.ReadImage(str(ct_path)), read_image(series)
    assert same_grid(back, ct, tol=1e-4) and np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(ct))
    out, models = tmp_path / "out", models_folder(tmp_path / "models")
    assert main(["predict", str(series), "-o", str(out), "--format", "nifti,dicom-seg", "--models-dir", str(models)]) == 0
    nifti = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "ct_dicom_seg.nii.gz")))
    assert (nifti == 1).any() and np.array_equal(read_dicom_seg_labels(out / "ct_dicom_seg.dcm", series), nifti)
    if shutil.which("dciodvfy"):
        check = subprocess.run(["dciodvfy", str(files[0])], capture_output=True, text=True).stderr
        assert "Error" not in check, check
