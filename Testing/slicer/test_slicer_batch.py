"""Batch processing from the console: files written, existing outputs skipped, bad cases survived."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import slicer
from LiverTumorSegLogic.batch import caseNames
from LiverTumorSegLogic.slicercompat import segmentTerminology

from .mrml_helpers import exported_labels


@pytest.fixture
def corrupt_ct(tmp_path) -> Path:
    """A file that claims to be a NIfTI CT but holds garbage."""
    path = tmp_path / "inputs" / "corrupt.nii.gz"
    path.parent.mkdir()
    path.write_bytes(b"\x1f\x8b\x08 this is not a gzip stream, nor an image")
    return path


def test_batch_writes_outputs_skips_existing_and_survives_bad_cases(headless, logic, small_ct_path, small_ct_result,
                                                                     shared_data, corrupt_ct, tmp_path):
    out = tmp_path / "out"
    inputs = [corrupt_ct.parent, small_ct_path, shared_data / "totalseg_example" / "mr.nii.gz"]  # a folder of CTs too
    before = headless.nodeCount()
    steps = []
    reports = logic.processFiles(inputs, out, progress=lambda f, m: steps.append(f))

    assert [r.status for r in reports] == ["failed", "done", "failed"]
    assert reports[0].input == str(corrupt_ct)
    assert "corrupt" in reports[0].message and "CT" in reports[2].message
    assert headless.nodeCount() == before, "the batch must leave the scene as it was"
    assert steps == sorted(steps) and steps[-1] == pytest.approx(2 / 3)
    done = reports[1]
    assert Path(done.segmentationFile) == out / "ct.seg.nrrd" and Path(done.lesionsFile) == out / "ct_lesions.csv"
    assert done.summary["lesions"] == len(small_ct_result.lesions)
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no scratch files left behind"

    again = logic.processFiles(inputs, out)
    assert [r.status for r in again] == ["failed", "skipped", "failed"]


def test_saved_segmentation_reloads_with_the_library_labels_and_terminology(headless, logic, small_ct_path,
                                                                            small_ct_result, tmp_path):
    (report,) = logic.processFiles([small_ct_path], tmp_path)
    volumeNode = slicer.util.loadVolume(str(small_ct_path))
    segmentationNode = slicer.util.loadSegmentation(report.segmentationFile)
    segmentation = segmentationNode.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == [
        "Liver", "Liver tumor"]
    assert all(segmentTerminology(segmentation.GetNthSegment(i)) for i in range(2))
    assert np.array_equal(exported_labels(segmentationNode, volumeNode), small_ct_result.labels)
    with open(report.lesionsFile, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(small_ct_result.lesions)
    assert [float(r["volume_ml"]) for r in rows] == [lesion.volume_ml for lesion in small_ct_result.lesions]


def test_overwrite_redoes_a_case(headless, logic, small_ct_path, tmp_path):
    (first,) = logic.processFiles([small_ct_path], tmp_path, liverOnly=True)
    stamp = Path(first.segmentationFile).stat().st_mtime_ns
    (second,) = logic.processFiles([small_ct_path], tmp_path, liverOnly=True, overwrite=True)
    assert second.status == "done" and Path(second.segmentationFile).stat().st_mtime_ns != stamp


def test_case_names_follow_the_cli_rule():
    from LiverTumorSegLib.outputs import case_names

    paths = [Path("a/ct.nii.gz"), Path("c/scan.nrrd"), Path("d/series"), Path("b/ct.nii.gz")]
    assert caseNames(paths) == case_names(paths) == ["a_ct", "scan", "series", "b_ct"]
    assert caseNames(paths[1:3]) == ["scan", "series"]  # a name without a clash is the file's own


def test_two_inputs_with_the_same_file_name_get_two_cases_and_overwrite_nothing(headless, logic, small_ct_path, tmp_path):
    import shutil

    twin = tmp_path / "other" / small_ct_path.name
    twin.parent.mkdir()
    shutil.copyfile(small_ct_path, twin)
    reports = logic.processFiles([small_ct_path, twin], tmp_path / "out", liverOnly=True)
    assert [r.status for r in reports] == ["done", "done"]
    files = {reports[0].segmentationFile, reports[1].segmentationFile}
    assert len(files) == 2 and all(Path(f).is_file() for f in files)


def test_failed_cases_name_no_output_files(headless, logic, corrupt_ct, tmp_path):
    (report,) = logic.processFiles([corrupt_ct], tmp_path / "out")
    assert report.status == "failed" and report.segmentationFile == "" and report.lesionsFile == ""


def test_storage_nodes_for_writing_are_released(headless):
    from LiverTumorSegLogic.batch import createStorageNode

    for nodeClass in ("vtkMRMLSegmentationNode", "vtkMRMLTableNode"):
        node = slicer.mrmlScene.AddNewNodeByClass(nodeClass)
        assert createStorageNode(node).GetReferenceCount() == 1, "only Python may hold the storage node"
        assert node.CreateDefaultStorageNode().GetReferenceCount() == 2, "slicer-core changed: revisit createStorageNode"
