"""The Slicer logic on an MR volume node: its DICOM Modality decides, and an MR gets a Liver segment only."""
from __future__ import annotations

import SimpleITK as sitk

import slicer
from LiverTumorSegLib.modality import MR_LIVER_ONLY
from Testing.lib.test_modality import mr_models, phantom_mr, write_dicom_series


class FakeDicomDatabase:
    """Stands in for slicer.dicomDatabase: the Modality (0008,0060) of known instance UIDs."""

    def __init__(self, modalities: dict[str, str]) -> None:
        self.modalities = modalities

    def instanceValue(self, uid: str, tag: str) -> str:
        return self.modalities.get(uid, "") if tag == "0008,0060" else ""


def mr_node(tmp_path, uids: str = "1.2.3 1.2.4"):
    """The MR phantom loaded by Slicer's reader, with the DICOM instance UIDs Slicer's DICOM plugin sets."""
    path = tmp_path / "mr.nrrd"
    sitk.WriteImage(phantom_mr(), str(path))
    node = slicer.util.loadVolume(str(path))
    node.SetAttribute("DICOM.instanceUIDs", uids)
    return node


def test_run_options_read_the_volumes_dicom_modality_and_make_mr_liver_only(logic, monkeypatch, tmp_path):
    monkeypatch.setattr(slicer, "dicomDatabase", FakeDicomDatabase({"1.2.3": "MR", "9.9": "CT"}), raising=False)
    options = logic.runOptions(mr_node(tmp_path))
    assert options.liverOnly and options.segmentKwargs()["modality"] == "mr"
    ct = logic.runOptions(mr_node(tmp_path, uids="9.9"))
    assert not ct.liverOnly and ct.segmentKwargs()["modality"] == "ct"
    assert logic.runOptions(mr_node(tmp_path, uids=""), modality="mr").liverOnly


def test_process_writes_only_a_liver_segment_for_an_mr_and_says_so(logic, monkeypatch, tmp_path):
    monkeypatch.setattr(slicer, "dicomDatabase", FakeDicomDatabase({"1.2.3": "MR"}), raising=False)
    monkeypatch.setenv("LIVERTUMORSEG_MODELS_DIR", str(mr_models(tmp_path / "models")))
    segmentationNode = logic.process(mr_node(tmp_path))
    segmentation = segmentationNode.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == ["Liver"]
    assert MR_LIVER_ONLY in logic.resultSummary(segmentationNode).get("warnings", "")


def test_batch_reads_an_mr_dicom_series_modality_and_saves_a_liver_segment_only(logic, monkeypatch, tmp_path):
    monkeypatch.setenv("LIVERTUMORSEG_MODELS_DIR", str(mr_models(tmp_path / "models")))
    folder = write_dicom_series(phantom_mr(), tmp_path / "mr_series", "MR")
    (report,) = logic.processFiles([folder], tmp_path / "out")
    assert report.status == "done", report
    segmentation = slicer.util.loadSegmentation(report.segmentationFile).GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == ["Liver"]
