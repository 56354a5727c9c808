"""Fixes of issue 18: liver-only re-run keeps its table, jump to lesion through the right transform, the
device check off the GUI thread."""
from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np
import pytest

import slicer
from LiverTumorSegLogic import LiverTumorSegLogic


def test_liver_only_rerun_into_a_segmentation_keeps_the_tumor_segment_and_its_table(logic, lesion_case):
    path, result = lesion_case
    volumeNode = slicer.util.loadVolume(str(path))
    segmentationNode = logic.applyResult(volumeNode, result)
    liverOnly = replace(result, labels=(result.labels > 0).astype(np.uint8), lesions=[], tumor_volume_ml=0.0)
    logic.applyResult(volumeNode, liverOnly, segmentationNode, replaceSegments=True, liverOnly=True)
    tableNode = logic.lesionTableNode(segmentationNode)
    assert tableNode.GetNumberOfRows() == len(result.lesions) >= 10, "the kept tumor segment keeps its table rows"
    assert logic.resultSummary(segmentationNode)["lesions"] == str(len(result.lesions))


def test_jump_to_lesion_uses_the_segmented_volumes_transform_not_the_selected_volume(logic, lesion_case):
    path, result = lesion_case
    volumeNode = slicer.util.loadVolume(str(path))
    transformNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    transformNode.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(np.array(
        [[1, 0, 0, 10.0], [0, 1, 0, -20.0], [0, 0, 1, 30.0], [0, 0, 0, 1]])))
    volumeNode.SetAndObserveTransformNodeID(transformNode.GetID())
    segmentationNode = logic.applyResult(volumeNode, result)
    otherVolume = slicer.util.addVolumeFromArray(np.zeros((4, 4, 4), np.int16))  # the one selected now, untransformed
    position = logic.lesionCentroid(segmentationNode, 1, otherVolume)
    assert position == pytest.approx(np.asarray(result.lesions[0].centroid_ras) + [10.0, -20.0, 30.0], abs=0.01)


def test_the_device_check_starts_in_the_background_and_returns_at_once(headless, monkeypatch):
    monkeypatch.setattr(LiverTumorSegLogic, "_devices", None)
    monkeypatch.setattr(LiverTumorSegLogic, "_deviceCheck", None)
    slow = ("import sys, time, json; time.sleep(1.5); "
            "print('LIVERTUMORSEG ' + json.dumps({'event': 'devices', 'devices': ['cpu'], 'reason': 'slow probe'}))")
    logic = LiverTumorSegLogic()
    logic.engineCommand = [sys.executable, "-c", slow]
    started = time.monotonic()
    logic.startDeviceCheck()
    assert time.monotonic() - started < 0.5, "opening the module must not wait for the device check"
    assert logic.knownDevices() is None
    assert logic.availableDevices() == ["cpu"] and logic.knownDevices() == (["cpu"], "slow probe")
