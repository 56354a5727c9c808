""""Compare with prior" logic on a real MRML scene: two CT volume nodes with liver segmentations in, a change table,
track label maps and the registered follow-up out (lits117_roi with a lesion painted over, moved and resampled)."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

import slicer
from LiverTumorSegLib import Geometry
from LiverTumorSegLib.errors import InvalidInputError
from LiverTumorSegLib.followup import CompareConfig, RegistrationConfig
from LiverTumorSegLib.terminology import SEGMENTS
from LiverTumorSegLogic import nodes
from LiverTumorSegLogic.compare import compareNodes, labelsFromSegmentation, trackIdAtRow, trackPosition

from Testing.lib.followup_pairs import write_painted_over_pair

AFFINE_ONLY = CompareConfig(registration=RegistrationConfig(deformable=False))


@pytest.fixture(scope="module")
def pair_files(shared_data, tmp_path_factory):
    """Baseline lits117_roi and a follow-up with lesion 3 painted over, moved and resampled: CT and labels as NRRD."""
    return write_painted_over_pair(shared_data / "lits117_roi", tmp_path_factory.mktemp("slicer_pair"), ".nrrd")


def _segmentation(volumeNode, labels_path) -> object:
    """A segmentation node with the module's Liver and Liver tumor segments painted from a 0/1/2 label file."""
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(labels_path)))
    node = nodes.createSegmentationNode(volumeNode)
    for spec in SEGMENTS:
        mask = (labels >= spec.label) if spec.label == 1 else (labels == spec.label)
        nodes.writeSegment(node, spec, mask.astype(np.uint8), nodes.ijkToRas(volumeNode))
    return node


@pytest.fixture
def loaded(headless, pair_files):
    """(baseline volume, follow-up volume, baseline segmentation, follow-up segmentation) in the test's scene."""
    base = slicer.util.loadVolume(str(pair_files["baseline"]))
    follow = slicer.util.loadVolume(str(pair_files["followup"]))
    return base, follow, _segmentation(base, pair_files["baseline_labels"]), _segmentation(follow, pair_files["followup_labels"])


def test_segments_come_back_as_the_label_map(loaded, pair_files):
    _, follow, _, followSeg = loaded
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(pair_files["followup_labels"])))
    assert np.array_equal(labelsFromSegmentation(followSeg, follow), expected)


def test_compare_nodes_fills_the_table_and_the_track_maps(loaded):
    base, follow, baseSeg, followSeg = loaded
    result = compareNodes(base, follow, baseSeg, followSeg, config=AFFINE_ONLY)
    table = result.table
    statuses = [table.GetTable().GetValue(r, table.GetColumnIndex("status")).ToString() for r in range(table.GetNumberOfRows())]
    assert statuses.count("disappeared") == 1 and statuses.count("new") == 0
    assert result.summary["status_counts"]["disappeared"] == 1
    assert slicer.util.arrayFromVolume(result.followupTracks).shape == nodes.arrayShape(follow)
    assert slicer.util.arrayFromVolume(result.registeredFollowup).shape == nodes.arrayShape(base)
    assert result.registeredFollowupTracks.IsA("vtkMRMLLabelMapVolumeNode")


def _value_at(volumeNode, ras) -> int:
    """The label map value at a RAS point (nearest voxel)."""
    geometry = Geometry.from_ijk_to_ras(nodes.ijkToRas(volumeNode))
    image = geometry.apply_to(sitk.GetImageFromArray(slicer.util.arrayFromVolume(volumeNode)))
    lps = (-ras[0], -ras[1], ras[2])
    return int(image[image.TransformPhysicalPointToIndex(lps)])


def test_a_track_position_lands_in_the_same_lesion_at_both_times(loaded):
    base, follow, baseSeg, followSeg = loaded
    result = compareNodes(base, follow, baseSeg, followSeg, config=AFFINE_ONLY)
    for track in (1, 2, 4):
        at_baseline = trackPosition(result, track, "baseline")
        assert _value_at(result.baselineTracks, at_baseline) == track
        assert _value_at(result.registeredFollowupTracks, at_baseline) == track  # one jump shows both times
        assert _value_at(result.followupTracks, trackPosition(result, track, "followup")) == track
    gone = 3
    assert trackPosition(result, gone, "followup") is None and trackPosition(result, gone, "registered") is None
    rows = [trackIdAtRow(result.table, r) for r in range(result.table.GetNumberOfRows())]
    assert rows == list(range(1, len(rows) + 1))


def test_a_segmentation_without_liver_segments_is_refused_and_adds_nothing(loaded):
    base, follow, baseSeg, _ = loaded
    empty = nodes.createSegmentationNode(follow)
    before = slicer.mrmlScene.GetNumberOfNodes()
    with pytest.raises(InvalidInputError, match="no segment named"):
        compareNodes(base, follow, baseSeg, empty)
    assert slicer.mrmlScene.GetNumberOfNodes() == before
