"""MRML side of the module: CT volume nodes in; segmentation and lesion table nodes out.

No Qt and no segmentation math: voxels and geometry go to LiverTumorSegLib as a Volume ((z, y, x)
array + Geometry from the node's IJK->RAS matrix), and its label map (z, y, x) uint8 with
0 background, 1 liver, 2 tumor comes back onto the same voxel grid. LiverTumorSegLib is imported
inside the functions, after the dependency check.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from . import presets, slicercompat

if TYPE_CHECKING:
    from LiverTumorSegLib import Lesion, SegmentationResult, Volume, WindowPreset
    from LiverTumorSegLib.terminology import SegmentSpec

ATTRIBUTE_PREFIX = "LiverTumorSeg."
LESION_TABLE_ROLE = "LiverTumorSeg.LesionTable"
#: Unit label of a lesion table column, by the suffix of its name in Lesion.row().
COLUMN_UNITS = {"_ml": "ml", "_mm": "mm", "_ras": "mm", "_lps": "mm", "_hu": "HU"}


def dicomModality(volumeNode) -> str:
    """The DICOM Modality tag ("CT", "MR", ...) of a volume loaded from Slicer's DICOM database, else ""."""
    uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split() if volumeNode is not None else []
    database = getattr(slicer, "dicomDatabase", None)
    if not uids or database is None:
        return ""
    return (database.instanceValue(uids[0], "0008,0060") or "").strip()


def checkVolumeNode(volumeNode) -> None:
    """Raise InvalidInputError unless `volumeNode` is a 3-D, single-component scalar volume in a scene."""
    InvalidInputError = presets.errors().InvalidInputError  # works before the first-use install

    if volumeNode is None:
        raise InvalidInputError("no input volume: select the CT volume to segment")
    name = volumeNode.GetName()
    if not volumeNode.IsA("vtkMRMLScalarVolumeNode") or volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InvalidInputError(f"'{name}' is a {volumeNode.GetClassName()}, not a CT (scalar) volume")
    scene = volumeNode.GetScene()
    if scene is None or not scene.IsNodePresent(volumeNode):
        raise InvalidInputError(f"volume '{name}' is no longer in the scene")
    image = volumeNode.GetImageData()
    if image is None or image.GetNumberOfPoints() == 0:
        raise InvalidInputError(f"volume '{name}' holds no voxels")
    if image.GetNumberOfScalarComponents() != 1:
        raise InvalidInputError(f"volume '{name}' has {image.GetNumberOfScalarComponents()} components per voxel "
                                "(a colour or vector image); select a grayscale CT")
    dims = image.GetDimensions()
    if min(dims) <= 1:
        raise InvalidInputError(f"volume '{name}' is a single 2-D slice ({dims[0]} x {dims[1]} x {dims[2]} voxels); "
                                "load the whole CT series as a 3-D volume")


def ijkToRas(volumeNode) -> np.ndarray:
    """The node's 4x4 IJK->RAS matrix (its own, without parent transforms)."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def arrayShape(volumeNode) -> tuple[int, int, int]:
    """Shape (z, y, x) of the node's voxel array."""
    return tuple(reversed(volumeNode.GetImageData().GetDimensions()))


def volumeFromNode(volumeNode) -> "Volume":
    """A copy of the node's voxels (z, y, x) with its geometry, safe to hand to a worker thread."""
    from LiverTumorSegLib import Geometry, Volume

    checkVolumeNode(volumeNode)
    array = np.array(slicer.util.arrayFromVolume(volumeNode), copy=True)
    return Volume(array, Geometry.from_ijk_to_ras(ijkToRas(volumeNode)))


def voxelsAndGeometry(volume) -> tuple[np.ndarray, dict]:
    """(z, y, x) voxels and Geometry fields of a library Volume or a SimpleITK image, for the engine process."""
    from dataclasses import asdict

    from LiverTumorSegLib import Geometry, Volume

    if not isinstance(volume, Volume):
        volume = Volume(sitkArray(volume), Geometry.of(volume))
    return volume.array, asdict(volume.geometry)


def sitkArray(image) -> np.ndarray:
    """The voxels of a SimpleITK image as a (z, y, x) array (a view where SimpleITK allows)."""
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(image)


def orientedMask(mask: np.ndarray, ijkToRasMatrix: np.ndarray) -> "slicer.vtkOrientedImageData":
    """A (z, y, x) 0/1 mask as a vtkOrientedImageData placed by `ijkToRasMatrix`."""
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(*mask.shape[::-1])
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(mask, dtype=np.uint8).ravel(), deep=True,
                                         array_type=vtk.VTK_UNSIGNED_CHAR)
    image.GetPointData().SetScalars(scalars)
    image.SetImageToWorldMatrix(slicer.util.vtkMatrixFromArray(ijkToRasMatrix))
    return image


def placeBeside(node, volumeNode) -> None:
    """Put `node` in the same subject hierarchy folder/study as `volumeNode` (when a hierarchy exists)."""
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(volumeNode.GetScene())
    if shNode is None:
        return
    volumeItem, item = shNode.GetItemByDataNode(volumeNode), shNode.GetItemByDataNode(node)
    if volumeItem and item:
        shNode.SetItemParent(item, shNode.GetItemParent(volumeItem))


def createSegmentationNode(volumeNode):
    """A new, empty segmentation node on the volume's grid, under the volume's parent transform."""
    scene = volumeNode.GetScene()
    name = scene.GenerateUniqueName(f"{volumeNode.GetName()} liver segmentation")
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentationNode.CreateDefaultDisplayNodes()
    adoptVolumeGeometry(segmentationNode, volumeNode)
    placeBeside(segmentationNode, volumeNode)
    return segmentationNode


def adoptVolumeGeometry(segmentationNode, volumeNode) -> None:
    """Make the volume's voxel grid the segmentation's reference geometry and share its parent transform."""
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())


def segmentNames(segmentationNode) -> list[str]:
    """Names of all segments of a segmentation node, in order."""
    segmentation = segmentationNode.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


def writeSegment(segmentationNode, spec: "SegmentSpec", mask: np.ndarray, ijkToRasMatrix: np.ndarray) -> str:
    """Create or overwrite the segment `spec.name` with a (z, y, x) 0/1 mask; return its segment ID."""
    from LiverTumorSegLib.errors import LiverTumorSegError

    segmentation = segmentationNode.GetSegmentation()
    segmentId = segmentation.GetSegmentIdBySegmentName(spec.name) or segmentation.AddEmptySegment(
        "", spec.name, spec.color_float)
    segment = segmentation.GetSegment(segmentId)
    segment.SetColor(*spec.color_float)
    segment.SetNameAutoGenerated(False)
    segment.SetColorAutoGenerated(False)
    slicercompat.setSegmentTerminology(segment, spec.terminology_entry())
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.SetBinaryLabelmapToSegment(orientedMask(mask, ijkToRasMatrix), segmentationNode, segmentId,
                                            logic.MODE_REPLACE):
        raise LiverTumorSegError(f"Slicer could not store the '{spec.name}' segment in {segmentationNode.GetName()}")
    return segmentId


def lesionColumnNames() -> list[str]:
    """Column names of the lesion table: the keys of the library's Lesion.row(), in order."""
    from LiverTumorSegLib import Lesion

    return list(Lesion(0, 0.0, 0.0, (0.0,) * 3, (0.0,) * 3, 0.0, 0).row())


def lesionTableNode(segmentationNode, create: bool = False):
    """The lesion table node referenced by a segmentation node (a new one if `create` and none yet)."""
    tableNode = segmentationNode.GetNodeReference(LESION_TABLE_ROLE)
    if tableNode is None and create:
        scene = segmentationNode.GetScene()
        name = scene.GenerateUniqueName(f"{segmentationNode.GetName()} lesions")
        tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
        segmentationNode.SetNodeReferenceID(LESION_TABLE_ROLE, tableNode.GetID())
    return tableNode


def fillLesionTable(tableNode, lesions: "list[Lesion]") -> None:
    """Replace the table's content with one row per lesion (id, volume ml, diameter mm, centroids mm, HU)."""
    rows = [lesion.row() for lesion in lesions]
    columnTypes = {name: int if name in ("id", "voxels") else float for name in lesionColumnNames()}
    tableNode.RemoveAllColumns()
    tableNode.SetUseColumnTitleAsColumnHeader(True)  # else the names are an editable first row, headed A, B, C
    tableNode.SetLocked(True)  # measurements, not notes: editing would desynchronise the table and the segment
    for name, kind in columnTypes.items():
        column = vtk.vtkIntArray() if kind is int else vtk.vtkDoubleArray()
        column.SetName(name)
        for row in rows:
            column.InsertNextValue(kind(row[name]))
        tableNode.AddColumn(column)
        unit = next((u for suffix, u in COLUMN_UNITS.items() if name.endswith(suffix)), "")
        tableNode.SetColumnTitle(name, columnTitle(name))
        if unit:
            tableNode.SetColumnUnitLabel(name, unit)
    tableNode.Modified()


def columnTitle(name: str) -> str:
    """Header text of a lesion table column, e.g. "Volume" for volume_ml (the view appends " [ml]")."""
    for suffix in ("_ml", "_mm", "_hu"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for frame in ("_ras", "_lps"):
        if name.endswith(frame):
            name = name[: -len(frame)] + " " + frame[1:].upper()
    text = name.replace("_", " ")
    return text[:1].upper() + text[1:]


def lesionIdAtRow(tableNode, row: int) -> int:
    """The lesion id in row `row` of a lesion table node (LiverTumorSegError if out of range)."""
    from LiverTumorSegLib.errors import LiverTumorSegError

    if tableNode is None or not 0 <= row < tableNode.GetNumberOfRows():
        raise LiverTumorSegError(f"no lesion in row {row} of the lesion table")
    return int(tableNode.GetTable().GetValue(int(row), tableNode.GetColumnIndex("id")).ToInt())


def storeSummary(segmentationNode, result: "SegmentationResult") -> None:
    """Record the run's headline numbers and warnings as attributes of the segmentation node."""
    for key, value in result.summary().items():
        segmentationNode.SetAttribute(ATTRIBUTE_PREFIX + key, str(value))
    segmentationNode.SetAttribute(ATTRIBUTE_PREFIX + "warnings", "\n".join(result.warnings))


def readSummary(segmentationNode) -> dict[str, str]:
    """The attributes written by `storeSummary` (keys without prefix; empty if never segmented here)."""
    names = segmentationNode.GetAttributeNames() or ()
    return {n[len(ATTRIBUTE_PREFIX):]: segmentationNode.GetAttribute(n) for n in names if n.startswith(ATTRIBUTE_PREFIX)}


def lesionCentroidWorld(tableNode, lesionId: int, transformedNode=None) -> tuple[float, float, float]:
    """World RAS (mm) of lesion `lesionId`'s centroid, through `transformedNode`'s parent transforms if any."""
    from LiverTumorSegLib.errors import LiverTumorSegError

    ids = slicer.util.arrayFromTableColumn(tableNode, "id")
    rows = np.flatnonzero(ids == lesionId)
    if rows.size == 0:
        raise LiverTumorSegError(f"no lesion {lesionId} in table {tableNode.GetName()}")
    table = tableNode.GetTable()
    ras = [table.GetValue(int(rows[0]), tableNode.GetColumnIndex(name)).ToDouble()
           for name in lesionColumnNames() if name.endswith("_ras")]
    parent = transformedNode.GetParentTransformNode() if transformedNode is not None else None
    if parent is None:
        return tuple(ras)
    toWorld = vtk.vtkGeneralTransform()
    parent.GetTransformToWorld(toWorld)
    return tuple(toWorld.TransformPoint(ras))


def applyWindow(volumeNode, preset: "WindowPreset") -> None:
    """Show `volumeNode` through a HU display window (fixed window/level, automatic level off)."""
    if volumeNode.GetDisplayNode() is None:
        volumeNode.CreateDefaultDisplayNodes()
    displayNode = volumeNode.GetDisplayNode()
    displayNode.AutoWindowLevelOff()
    displayNode.SetWindowLevel(preset.width, preset.level)


def removeNodes(nodes) -> None:
    """Remove nodes and their display and storage nodes from their scene (ignores None and removed nodes)."""
    for node in nodes:
        scene = node.GetScene() if node is not None else None
        if scene is None:
            continue
        dependents = []
        if node.IsA("vtkMRMLDisplayableNode"):
            dependents += [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
        if node.IsA("vtkMRMLStorableNode"):
            dependents += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())]
        for dependent in dependents + [node]:
            if dependent is not None and scene.IsNodePresent(dependent):
                scene.RemoveNode(dependent)
