"""Correct-and-re-run on MRML: read edited segments, add / remove one lesion, rebuild the table, undo.

Arrays are (z, y, x) on the CT volume's voxel grid; points are world RAS in mm. No Qt. Undo keeps the
segmentation, lesion table and summary of each segmentation node as they were before each change
(in memory, UNDO_DEPTH deep), so a correction is undone with `restore()`.
"""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import numpy as np
import slicer
import vtk

from . import nodes

if TYPE_CHECKING:
    from LiverTumorSegLib import SegmentationResult

UNDO_DEPTH = 10
SNAP_MM = 3.0  # a point this close to a lesion counts as on it (Remove lesion)
VOLUME_ROLE = "LiverTumorSeg.Volume"  # the CT a segmentation was made from (for Remove lesion's table)
UNDO_KEY = "LiverTumorSegUndoKey"  # node attribute: a random key of its undo stack (node IDs repeat across scenes)
_undo: dict[str, list] = {}  # undo key -> snapshots, newest last


def segmentArray(segmentationNode, name: str, volumeNode) -> np.ndarray:
    """Segment `name` as a (z, y, x) bool array on the volume's grid (all False when there is none)."""
    segmentId = segmentationNode.GetSegmentation().GetSegmentIdBySegmentName(name)
    if not segmentId:
        return np.zeros(nodes.arrayShape(volumeNode), dtype=bool)
    return np.asarray(slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode)) > 0


def labelsOf(segmentationNode, volumeNode) -> np.ndarray:
    """The library's label map (0 background, 1 liver, 2 tumor) of the Liver / Liver tumor segments."""
    from LiverTumorSegLib import LIVER, TUMOR

    labels = np.zeros(nodes.arrayShape(volumeNode), dtype=np.uint8)
    labels[segmentArray(segmentationNode, "Liver", volumeNode)] = LIVER
    labels[segmentArray(segmentationNode, "Liver tumor", volumeNode)] = TUMOR
    return labels


def worldToIjk(volumeNode, rasPoint) -> tuple[int, int, int]:
    """The (i, j, k) = (x, y, z) voxel index of a world RAS point, through the volume's parent transforms."""
    local = list(rasPoint)
    parent = volumeNode.GetParentTransformNode()
    if parent is not None:
        fromWorld = vtk.vtkGeneralTransform()
        parent.GetTransformFromWorld(fromWorld)
        local = list(fromWorld.TransformPoint(local))
    rasToIjk = vtk.vtkMatrix4x4()
    volumeNode.GetRASToIJKMatrix(rasToIjk)
    ijk = rasToIjk.MultiplyPoint(local + [1.0])[:3]
    return tuple(int(round(v)) for v in ijk)


def insideVolume(volumeNode, ijk) -> bool:
    """True when voxel index (x, y, z) lies in the volume."""
    return all(0 <= v < n for v, n in zip(ijk, volumeNode.GetImageData().GetDimensions()))


def componentAt(mask: np.ndarray, ijk, spacingZyx, snapMm: float = SNAP_MM) -> np.ndarray:
    """The 26-connected component of `mask` under voxel `ijk` (x, y, z), or within `snapMm` of it (else empty)."""
    from LiverTumorSegLib.lesion_at import component_at

    return component_at(mask, tuple(ijk)[::-1], spacingZyx, snapMm)


def resultFromLabels(volumeNode, labels: np.ndarray, previous: dict[str, str]) -> "SegmentationResult":
    """A SegmentationResult measured from a label map on the volume's grid (lesions, volumes, slices)."""
    from LiverTumorSegLib import Geometry, SegmentationResult
    from LiverTumorSegLib.lesions import measure_lesions, organ_volumes_ml, slices_with_tumor

    geometry = Geometry.from_ijk_to_ras(nodes.ijkToRas(volumeNode))
    hu = slicer.util.arrayFromVolume(volumeNode)
    liverMl, tumorMl = organ_volumes_ml(labels, geometry)
    return SegmentationResult(labels, geometry, measure_lesions(labels, hu, geometry), liverMl, tumorMl,
                              slices_with_tumor(labels), device=previous.get("device", ""),
                              model_set=previous.get("model_set", ""))


def referencedVolume(segmentationNode):
    """The CT volume node this segmentation was made from (our reference, else Slicer's geometry reference)."""
    return segmentationNode.GetNodeReference(VOLUME_ROLE) or segmentationNode.GetNodeReference(
        "referenceImageGeometryRef")


def snapshot(segmentationNode) -> None:
    """Keep the segments, lesion table and summary as they are now, for `restore()`."""
    segmentation = slicer.vtkSegmentation()
    segmentation.DeepCopy(segmentationNode.GetSegmentation())
    tableNode = nodes.lesionTableNode(segmentationNode)
    table = None
    if tableNode is not None:
        table = vtk.vtkTable()
        table.DeepCopy(tableNode.GetTable())
    attributes = {n: segmentationNode.GetAttribute(n) for n in segmentationNode.GetAttributeNames() or ()
                  if n.startswith(nodes.ATTRIBUTE_PREFIX)}
    if not segmentationNode.GetAttribute(UNDO_KEY):
        segmentationNode.SetAttribute(UNDO_KEY, uuid.uuid4().hex)
    stack = _undo.setdefault(segmentationNode.GetAttribute(UNDO_KEY), [])
    stack.append((segmentation, table, attributes))
    del stack[:-UNDO_DEPTH]


def canRestore(segmentationNode) -> bool:
    """True when a correction of this segmentation node can be undone."""
    return segmentationNode is not None and bool(_undo.get(segmentationNode.GetAttribute(UNDO_KEY) or ""))


def restore(segmentationNode) -> bool:
    """Put back the segments, table and summary before the last correction; False if there is none."""
    stack = _undo.get(segmentationNode.GetAttribute(UNDO_KEY) or "")
    if not stack:
        return False
    segmentation, table, attributes = stack.pop()
    segmentationNode.GetSegmentation().DeepCopy(segmentation)
    tableNode = nodes.lesionTableNode(segmentationNode)
    if tableNode is not None and table is not None:
        tableNode.GetTable().DeepCopy(table)
        tableNode.Modified()
    for name in [n for n in segmentationNode.GetAttributeNames() or () if n.startswith(nodes.ATTRIBUTE_PREFIX)]:
        segmentationNode.RemoveAttribute(name)
    for name, value in attributes.items():
        segmentationNode.SetAttribute(name, value)
    segmentationNode.Modified()
    return True
