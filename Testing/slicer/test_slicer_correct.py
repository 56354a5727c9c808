"""Correct and re-run: Find tumors in an edited liver, Add / Remove lesion at a point, Undo (real MRML)."""
from __future__ import annotations

import numpy as np
import pytest

import slicer
from LiverTumorSegLib import segment
from LiverTumorSegLib.errors import InvalidInputError, LiverTumorSegError
from LiverTumorSegLib.io import read_image

from .mrml_helpers import ijk_to_ras
from .test_slicer_tumor_path import lesion_ct, tiny_models  # noqa: F401 (fixtures: real CT + inserted lesion, rule models)


def _segment(segmentationNode, name, volumeNode) -> np.ndarray:
    """A segment as a (z, y, x) bool array on the volume's grid."""
    segmentId = segmentationNode.GetSegmentation().GetSegmentIdBySegmentName(name)
    return slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode) > 0


def _liverOnly(logic, lesion_ct):
    """The lesion CT in the scene and a liver-only segmentation of it (no tumor segment yet)."""
    path, lesion = lesion_ct
    volumeNode = slicer.util.loadVolume(str(path))
    return volumeNode, logic.process(volumeNode, liverOnly=True, device="cpu"), lesion


def test_find_tumors_runs_the_tumor_stage_inside_the_edited_liver_and_undo_restores(headless, logic, lesion_ct, tiny_models):
    volumeNode, segmentationNode, lesion = _liverOnly(logic, lesion_ct)
    liver = _segment(segmentationNode, "Liver", volumeNode)
    logic.findTumors(volumeNode, segmentationNode)
    expected = segment(read_image(lesion_ct[0]), liver_mask=liver.astype(np.uint8), device="cpu")
    tumor = _segment(segmentationNode, "Liver tumor", volumeNode)
    assert np.array_equal(tumor, (expected.labels == 2) & liver) and tumor[lesion.within(9.0)].all()
    assert logic.lesionTableNode(segmentationNode).GetNumberOfRows() == len(expected.lesions) == 1
    assert logic.resultSummary(segmentationNode)["lesions"] == "1"

    edited = liver & ~lesion.within(20.0)  # the reader cuts the lesion's region out of the liver
    slicer.util.updateSegmentBinaryLabelmapFromArray(edited.astype(np.uint8), segmentationNode,
        segmentationNode.GetSegmentation().GetSegmentIdBySegmentName("Liver"), volumeNode)
    logic.findTumors(volumeNode, segmentationNode)
    expected = segment(read_image(lesion_ct[0]), liver_mask=edited.astype(np.uint8), device="cpu")
    assert np.array_equal(_segment(segmentationNode, "Liver tumor", volumeNode), (expected.labels == 2) & edited)
    assert not _segment(segmentationNode, "Liver tumor", volumeNode)[lesion.within(12.0)].any(), "tumors are found inside the edited liver only"
    assert logic.lesionTableNode(segmentationNode).GetNumberOfRows() == 0 < len(expected.lesions)
    assert np.array_equal(_segment(segmentationNode, "Liver", volumeNode), edited), "Find tumors must keep the edited liver"

    assert logic.undo(segmentationNode)
    assert np.array_equal(_segment(segmentationNode, "Liver tumor", volumeNode), tumor)
    assert logic.lesionTableNode(segmentationNode).GetNumberOfRows() == 1 and logic.resultSummary(segmentationNode)["lesions"] == "1"
    assert logic.undo(segmentationNode) and not segmentationNode.GetSegmentation().GetSegmentIdBySegmentName("Liver tumor")
    assert not logic.undo(segmentationNode) and not logic.canUndo(segmentationNode)


def test_find_tumors_without_a_liver_segment_is_a_clear_error(headless, logic, lesion_ct):
    volumeNode = slicer.util.loadVolume(str(lesion_ct[0]))
    segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    with pytest.raises(InvalidInputError, match="'Liver' segment"):
        logic.findTumors(volumeNode, segmentationNode)


def test_remove_then_add_lesion_at_a_point_and_undo(headless, logic, lesion_ct, tiny_models):
    volumeNode, segmentationNode, lesion = _liverOnly(logic, lesion_ct)
    logic.findTumors(volumeNode, segmentationNode)
    found = _segment(segmentationNode, "Liver tumor", volumeNode)
    point = tuple(lesion.center_lps * [-1, -1, 1])  # world RAS of the lesion's centre

    assert logic.removeLesionAt(segmentationNode, point) == 1
    assert not _segment(segmentationNode, "Liver tumor", volumeNode).any()
    assert logic.lesionTableNode(segmentationNode).GetNumberOfRows() == 0
    with pytest.raises(LiverTumorSegError, match="no lesion"):
        logic.removeLesionAt(segmentationNode, point)

    lesionId = logic.addLesionAt(volumeNode, segmentationNode, point)
    added = _segment(segmentationNode, "Liver tumor", volumeNode)
    dice = 2 * (added & lesion.mask).sum() / (added.sum() + lesion.mask.sum())
    assert lesionId == 1 and dice > 0.7, f"the added lesion has Dice {dice:.2f} with the inserted one"
    assert (_segment(segmentationNode, "Liver", volumeNode) & added).sum() == added.sum(), "Liver must hold the lesion"
    assert logic.lesionTableNode(segmentationNode).GetNumberOfRows() == 1

    assert logic.undo(segmentationNode) and not _segment(segmentationNode, "Liver tumor", volumeNode).any()
    assert logic.undo(segmentationNode) and np.array_equal(_segment(segmentationNode, "Liver tumor", volumeNode), found)


def test_add_lesion_where_there_is_none_or_outside_the_ct_changes_nothing(headless, logic, lesion_ct, tiny_models):
    volumeNode, segmentationNode, lesion = _liverOnly(logic, lesion_ct)
    before = headless.nodeCount()
    with pytest.raises(InvalidInputError, match="outside"):
        logic.addLesionAt(volumeNode, segmentationNode, (1e4, 0.0, 0.0))
    liver = _segment(segmentationNode, "Liver", volumeNode)
    far = np.argwhere(liver & ~lesion.within(40.0))[0]  # a liver voxel far from the lesion: healthy tissue
    ras = (ijk_to_ras(volumeNode) @ np.append(far[::-1], 1.0))[:3]
    with pytest.raises(LiverTumorSegError, match="no lesion found"):
        logic.addLesionAt(volumeNode, segmentationNode, tuple(ras))
    assert headless.nodeCount() == before and not logic.canUndo(segmentationNode)
