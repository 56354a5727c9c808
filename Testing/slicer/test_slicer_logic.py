"""LiverTumorSegLogic on a real MRML scene (slicer-core): segments, terminology, geometry, tables, errors."""
from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
import vtk

import slicer
from LiverTumorSegLib import PRESETS, Lesion, segment
from LiverTumorSegLib.errors import CancelledError, InvalidInputError, LiverTumorSegError, NotCTError, OutputExistsError
from LiverTumorSegLib.terminology import SEGMENTS
from LiverTumorSegLogic.slicercompat import segmentTerminology

from .headless_slicer import HeadlessSlicer
from .mrml_helpers import exported_labels, ijk_to_ras, on_reference_grid, reoriented, rotation


@pytest.fixture(scope="module")
def processed(small_ct_path):
    """One process() run on the 3 mm CT loaded by Slicer's reader, shared by the read-only tests below."""
    with pytest.MonkeyPatch.context() as mp:
        env = HeadlessSlicer.create()
        env.publish(mp)
        from LiverTumorSegLogic import LiverTumorSegLogic

        logic = LiverTumorSegLogic()
        volumeNode = slicer.util.loadVolume(str(small_ct_path))
        steps = []
        segmentationNode = logic.process(volumeNode, progress=lambda f, m: steps.append((f, m)))
        yield env, logic, volumeNode, segmentationNode, steps
        env.scene.Clear(1)


@pytest.fixture
def ct_node(headless, small_ct_path):
    """The 3 mm CT loaded into the test's scene with slicer.util.loadVolume."""
    return slicer.util.loadVolume(str(small_ct_path))


def test_process_creates_liver_and_tumor_segments_with_snomed_terminology_and_colours(processed):
    _, _, _, segmentationNode, _ = processed
    segmentation = segmentationNode.GetSegmentation()
    segments = [segmentation.GetNthSegment(i) for i in range(segmentation.GetNumberOfSegments())]
    assert [s.GetName() for s in segments] == ["Liver", "Liver tumor"]
    for segment, spec in zip(segments, SEGMENTS):
        assert np.allclose(segment.GetColor(), spec.color_float)
        entry = slicer.vtkSlicerTerminologyEntry()
        assert slicer.vtkSlicerTerminologiesModuleLogic.DeserializeTerminologyEntry(segmentTerminology(segment), entry)
        assert (entry.GetCategoryObject().GetCodingSchemeDesignator(), entry.GetCategoryObject().GetCodeValue()) == (
            "SCT", spec.category.value)
        assert (entry.GetTypeObject().GetCodingSchemeDesignator(), entry.GetTypeObject().GetCodeValue()) == (
            "SCT", spec.type.value)
    assert segments[0].GetColor() == pytest.approx((221 / 255, 130 / 255, 101 / 255))
    tumor = slicer.vtkSlicerTerminologyEntry()
    slicer.vtkSlicerTerminologiesModuleLogic.DeserializeTerminologyEntry(segmentTerminology(segments[1]), tumor)
    assert tumor.GetTypeObject().GetCodeValue() == "108369006"  # SNOMED CT: neoplasm
    assert tumor.GetAnatomicRegionObject().GetCodeValue() == "10200004"  # in the liver


def test_exported_labelmap_equals_the_library_label_map_on_the_ct_grid(processed, small_ct_result):
    _, _, volumeNode, segmentationNode, _ = processed
    labels = exported_labels(segmentationNode, volumeNode)
    assert labels.shape == small_ct_result.labels.shape
    assert np.array_equal(labels, small_ct_result.labels)
    assert (labels == 1).sum() > 1000, "the shared CT holds a liver: expected a real liver segment"


def test_segmentation_is_on_the_ct_grid_and_beside_it_in_the_subject_hierarchy(processed):
    env, _, volumeNode, segmentationNode, _ = processed
    liverId = segmentationNode.GetSegmentation().GetSegmentIdBySegmentName("Liver")
    liver = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, liverId)  # reference geometry only
    assert liver.shape == slicer.util.arrayFromVolume(volumeNode).shape
    shNode = env.scene.GetSubjectHierarchyNode()
    parent = shNode.GetItemParent(shNode.GetItemByDataNode(volumeNode))
    assert shNode.GetItemParent(shNode.GetItemByDataNode(segmentationNode)) == parent
    assert segmentationNode.GetDisplayNode() is not None


def test_lesion_table_has_the_library_columns_and_one_row_per_lesion(processed, small_ct_result):
    _, logic, _, segmentationNode, _ = processed
    tableNode = logic.lesionTableNode(segmentationNode)
    columns = [tableNode.GetColumnName(i) for i in range(tableNode.GetNumberOfColumns())]
    assert columns == list(Lesion(0, 0.0, 0.0, (0.0,) * 3, (0.0,) * 3, 0.0, 0).row())
    assert tableNode.GetNumberOfRows() == len(small_ct_result.lesions)


def test_tumor_segment_and_lesion_table_hold_every_lesion_with_units(logic, lesion_case):
    path, result = lesion_case
    volumeNode = slicer.util.loadVolume(str(path))
    segmentationNode = logic.applyResult(volumeNode, result)
    assert np.array_equal(exported_labels(segmentationNode, volumeNode), result.labels)
    tableNode = logic.lesionTableNode(segmentationNode)
    assert tableNode.GetNumberOfRows() == len(result.lesions) >= 10
    columns = [tableNode.GetColumnName(i) for i in range(tableNode.GetNumberOfColumns())]
    for row, lesion in enumerate(result.lesions):
        expected = lesion.row()
        assert [tableNode.GetTable().GetValueByName(row, c).ToDouble() for c in columns] == pytest.approx(
            [float(expected[c]) for c in columns])
    assert tableNode.GetColumnUnitLabel("volume_ml") == "ml"
    assert tableNode.GetColumnUnitLabel("longest_axial_diameter_mm") == "mm"
    assert tableNode.GetColumnUnitLabel("centroid_R_ras") == "mm"


def test_summary_attributes_are_the_library_summary(processed, small_ct_result):
    _, logic, _, segmentationNode, _ = processed
    summary = logic.resultSummary(segmentationNode)
    expected = small_ct_result.summary()
    for key in ("liver_volume_ml", "tumor_volume_ml", "tumor_burden_percent", "lesions", "device"):
        assert summary[key] == str(expected[key])


def test_progress_is_reported_through_every_stage(processed):
    _, _, _, _, steps = processed
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert len({m.split(":")[0] for _, m in steps}) >= 4


def test_each_run_creates_a_new_segmentation_node_by_default(logic, ct_node, small_ct_result):
    first = logic.applyResult(ct_node, small_ct_result)
    other = replace(small_ct_result, labels=np.where(small_ct_result.labels > 0, 0, 1).astype(np.uint8), lesions=[])
    second = logic.applyResult(ct_node, other)
    assert first is not second and first.GetName() != second.GetName()
    assert logic.lesionTableNode(first) is not logic.lesionTableNode(second)
    assert np.array_equal(exported_labels(first, ct_node), small_ct_result.labels), "the re-run changed the first segmentation"
    assert logic.lesionTableNode(first).GetNumberOfRows() == len(small_ct_result.lesions)


def test_rerun_into_an_edited_segmentation_refuses_and_keeps_the_manual_edits(headless, logic, ct_node, small_ct_result):
    segmentationNode = logic.applyResult(ct_node, small_ct_result)
    segmentation = segmentationNode.GetSegmentation()
    liverId = segmentation.GetSegmentIdBySegmentName("Liver")
    edited = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, liverId, ct_node)
    edited[:, :10, :10] = 1  # a manual edit
    slicer.util.updateSegmentBinaryLabelmapFromArray(edited, segmentationNode, liverId, ct_node)
    segmentation.AddEmptySegment("", "Radiologist note", (0.2, 0.3, 0.9))
    before = headless.nodeCount()

    with pytest.raises(OutputExistsError, match="replaceSegments=True"):
        logic.process(ct_node, segmentationNode)
    assert headless.nodeCount() == before
    assert np.array_equal(slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, liverId, ct_node), edited)

    logic.applyResult(ct_node, small_ct_result, segmentationNode, replaceSegments=True)
    liver = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, liverId, ct_node)
    assert np.array_equal(liver, (small_ct_result.labels > 0).astype(liver.dtype))
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == [
        "Liver", "Liver tumor", "Radiologist note"]


@pytest.mark.parametrize("preset", ["liver", "abdomen"])
def test_window_preset_sets_the_display_node_from_the_library_presets(logic, ct_node, preset):
    logic.applyWindowPreset(ct_node, preset)
    display = ct_node.GetDisplayNode()
    assert (display.GetWindow(), display.GetLevel()) == (PRESETS[preset].width, PRESETS[preset].level)
    assert not display.GetAutoWindowLevel()


def test_unknown_window_preset_is_a_clear_error(logic, ct_node):
    with pytest.raises(InvalidInputError, match="liver"):
        logic.applyWindowPreset(ct_node, "brain")


def _single_slice(headless, shared_data):
    """A 2-D CT slice as a one-slice volume node."""
    return slicer.util.addVolumeFromArray(np.full((1, 64, 64), -1000, np.int16), np.diag([0.8, 0.8, 1.0, 1.0]))


def _labelmap(headless, shared_data):
    """A labelmap volume node (not a CT)."""
    return slicer.util.addVolumeFromArray(np.zeros((20, 64, 64), np.uint8), nodeClassName="vtkMRMLLabelMapVolumeNode")


def _mr(headless, shared_data):
    """The shared abdominal MR, loaded with Slicer's reader."""
    return slicer.util.loadVolume(str(shared_data / "totalseg_example" / "mr.nii.gz"))


@pytest.mark.parametrize("make, error, message", [
    (lambda h, d: None, InvalidInputError, "no input volume"),
    (_single_slice, InvalidInputError, "single 2-D slice"),
    (_labelmap, InvalidInputError, "not a CT"),
    (_mr, NotCTError, "does not look like a CT"),
], ids=["no-volume", "2d-slice", "labelmap", "mr"])
def test_bad_input_raises_a_clear_error_and_leaves_the_scene_unchanged(headless, logic, shared_data, make, error, message):
    volumeNode = make(headless, shared_data)
    before = headless.nodeCount()
    with pytest.raises(error, match=message):
        logic.process(volumeNode)
    assert headless.nodeCount() == before


def test_cancel_stops_at_the_next_check_and_leaves_the_scene_unchanged(headless, logic, ct_node):
    cancel, late = threading.Event(), []

    def progress(fraction: float, message: str) -> None:
        late.append(cancel.is_set())
        if fraction >= 0.3:
            cancel.set()

    before = headless.nodeCount()
    with pytest.raises(CancelledError):
        logic.process(ct_node, progress=progress, cancel=cancel)
    assert late.count(True) == 0, "progress went on after the cancel"
    assert headless.nodeCount() == before


def test_liver_only_writes_only_the_liver_segment(logic, ct_node, small_ct):
    segmentationNode = logic.process(ct_node, liverOnly=True)
    segmentation = segmentationNode.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == ["Liver"]
    assert logic.lesionTableNode(segmentationNode).GetNumberOfRows() == 0
    assert np.array_equal(exported_labels(segmentationNode, ct_node), segment(small_ct, liver_only=True).labels)


def test_output_lands_on_the_input_grid_for_an_oblique_ct(headless, logic, small_ct, tmp_path):
    image = reoriented(small_ct, np.asarray(small_ct.GetDirection()).reshape(3, 3) @ rotation(20, 12))
    sitk.WriteImage(image, str(tmp_path / "oblique.nrrd"))
    volumeNode = slicer.util.loadVolume(str(tmp_path / "oblique.nrrd"))
    from LiverTumorSegLib import Geometry

    assert np.allclose(ijk_to_ras(volumeNode), Geometry.of(image).ijk_to_ras(), atol=1e-4)
    segmentationNode = logic.process(volumeNode)
    assert np.array_equal(exported_labels(segmentationNode, volumeNode), segment(image).labels)


def test_mirrored_ct_matches_the_library_in_world_space(headless, logic, small_ct, tmp_path):
    mirror = np.diag([1.0, -1.0, 1.0])  # a left-handed (negative determinant) voxel grid
    image = reoriented(small_ct, np.asarray(small_ct.GetDirection()).reshape(3, 3) @ rotation(15, 0) @ mirror)
    sitk.WriteImage(image, str(tmp_path / "mirrored.nrrd"))
    volumeNode = slicer.util.loadVolume(str(tmp_path / "mirrored.nrrd"))
    assert np.linalg.det(ijk_to_ras(volumeNode)[:3, :3]) > 0, "Slicer's reader is expected to flip K on load"
    segmentationNode = logic.process(volumeNode)
    world = on_reference_grid(exported_labels(segmentationNode, volumeNode), ijk_to_ras(volumeNode), image)
    reference = segment(image).labels
    assert np.array_equal(world, reference)


def test_segmentation_follows_a_transformed_ct_and_lesion_jumps_land_in_world_space(logic, lesion_case):
    path, result = lesion_case
    volumeNode = slicer.util.loadVolume(str(path))
    transformNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = np.eye(4)
    matrix[:3, 3] = (10.0, -20.0, 30.0)
    transformNode.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(matrix))
    volumeNode.SetAndObserveTransformNodeID(transformNode.GetID())
    segmentationNode = logic.applyResult(volumeNode, result)
    assert segmentationNode.GetTransformNodeID() == transformNode.GetID()
    for lesion in result.lesions:
        world = logic.lesionCentroid(segmentationNode, lesion.id, volumeNode)
        assert world == pytest.approx(np.add(lesion.centroid_ras, (10.0, -20.0, 30.0)), abs=0.01)


def test_a_segmentation_under_another_transform_is_refused(headless, logic, ct_node, small_ct_result):
    other = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    other.GetSegmentation().AddEmptySegment("", "Spleen", (0.5, 0.5, 0.5))
    ct_node.SetAndObserveTransformNodeID(slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode").GetID())
    before = headless.nodeCount()
    with pytest.raises(InvalidInputError, match="different transforms"):
        logic.applyResult(ct_node, small_ct_result, other)
    assert headless.nodeCount() == before and other.GetSegmentation().GetNumberOfSegments() == 1


def test_a_segmentation_removed_during_the_run_is_refused(headless, logic, ct_node, small_ct_result):
    target = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    slicer.mrmlScene.RemoveNode(target)
    with pytest.raises(InvalidInputError, match="not in the volume's scene"):
        logic.applyResult(ct_node, small_ct_result, target)


def test_lesion_table_shows_titles_with_units_as_headers_is_locked_and_maps_rows_to_lesions(logic, lesion_case):
    path, result = lesion_case
    segmentationNode = logic.applyResult(slicer.util.loadVolume(str(path)), result)
    tableNode = logic.lesionTableNode(segmentationNode)
    # Off by default: qMRMLTableModel then shows the names as an editable row 0 and heads the columns A, B, C.
    assert tableNode.GetUseColumnTitleAsColumnHeader()
    assert tableNode.GetLocked()
    assert tableNode.GetColumnTitle("volume_ml") == "Volume" and tableNode.GetColumnUnitLabel("volume_ml") == "ml"
    assert tableNode.GetColumnTitle("centroid_R_ras") == "Centroid R RAS"
    assert [logic.lesionIdAtRow(tableNode, row) for row in range(tableNode.GetNumberOfRows())] == [
        lesion.id for lesion in result.lesions]
    with pytest.raises(LiverTumorSegError, match="no lesion in row"):
        logic.lesionIdAtRow(tableNode, tableNode.GetNumberOfRows())


def test_segments_carry_terminology_in_the_tag_slicer_5_8_reads(processed):
    _, _, _, segmentationNode, _ = processed
    segment = segmentationNode.GetSegmentation().GetNthSegment(0)
    tag = vtk.reference("")
    assert segment.GetTag(segment.GetTerminologyEntryTagName(), tag)  # no GetTerminology() before Slicer 5.10
    assert str(tag) == SEGMENTS[0].terminology_entry()


def test_liver_segment_contains_its_tumors_so_its_volume_is_the_panel_liver_volume(logic, lesion_case):
    path, result = lesion_case
    volumeNode = slicer.util.loadVolume(str(path))
    segmentationNode = logic.applyResult(volumeNode, result)
    segmentation = segmentationNode.GetSegmentation()
    liver, tumor = (slicer.util.arrayFromSegmentBinaryLabelmap(
        segmentationNode, segmentation.GetSegmentIdBySegmentName(name), volumeNode) > 0 for name in ("Liver", "Liver tumor"))
    assert tumor.any() and (liver & tumor).sum() == tumor.sum(), "'Liver tumor' must lie inside 'Liver'"
    assert np.array_equal(liver, result.labels > 0)
    voxel_ml = float(np.prod(result.geometry.spacing)) / 1000.0
    assert liver.sum() * voxel_ml == pytest.approx(result.liver_volume_ml), "Segment Statistics must agree with the panel"
