"""Small helpers for the Slicer tests: export segments to a label map, re-orient a CT, compare in world space."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import vtk

import slicer


def exported_labels(segmentationNode, volumeNode) -> np.ndarray:
    """The segments exported to a label map on the volume's grid (z, y, x): n-th segment = value n."""
    ids = vtk.vtkStringArray()
    for segmentId in segmentationNode.GetSegmentation().GetSegmentIDs():
        ids.InsertNextValue(segmentId)
    labelmapNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    try:
        assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentationNode, ids, labelmapNode, volumeNode)
        return slicer.util.arrayFromVolume(labelmapNode).copy()
    finally:
        slicer.mrmlScene.RemoveNode(labelmapNode)


def ijk_to_ras(volumeNode) -> np.ndarray:
    """A volume node's 4x4 IJK->RAS matrix."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def rotation(z_deg: float, x_deg: float) -> np.ndarray:
    """3x3 rotation about z then x (degrees)."""
    a, b = np.radians([z_deg, x_deg])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rx @ rz


def reoriented(image: sitk.Image, direction: np.ndarray) -> sitk.Image:
    """The same voxels, spacing and origin with another LPS direction matrix (columns = i, j, k axes)."""
    out = sitk.Image(image)
    out.SetDirection(tuple(np.asarray(direction, float).ravel()))
    return out


def on_reference_grid(labels_zyx: np.ndarray, ijkToRas: np.ndarray, reference: sitk.Image) -> np.ndarray:
    """A label map placed by a Slicer IJK->RAS matrix, sampled (nearest) at the voxel centres of `reference`."""
    from LiverTumorSegLib import Geometry

    moving = Geometry.from_ijk_to_ras(ijkToRas).apply_to(sitk.GetImageFromArray(labels_zyx.astype(np.uint8)))
    return sitk.GetArrayFromImage(sitk.Resample(moving, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
