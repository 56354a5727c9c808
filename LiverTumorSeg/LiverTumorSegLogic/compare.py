"""Qt-free logic of "Compare with prior": two CT volume nodes (and their liver segmentations) in; the library's
follow-up comparison; a change table, track-id label maps at both times and the registered follow-up out.

Usable without the GUI (e.g. from Slicer's Python console):
    from LiverTumorSegLogic.compare import compareNodes
    result = compareNodes(baselineVolume, followupVolume, baselineSegmentation, followupSegmentation)
Label maps go to the library as (z, y, x) uint8 arrays, 0 background, 1 liver, 2 tumor, on each CT's grid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import slicer
import vtk

from . import nodes
from .dependencies import requireDependencies

TEXT_COLUMNS = ("status", "baseline_id", "followup_id")  # the change table's columns that are not numbers


@dataclass
class ComparisonNodes:
    """What a comparison adds to the scene, and its report."""

    table: object  # vtkMRMLTableNode: one row per lesion track (the CSV's columns)
    baselineTracks: object  # vtkMRMLLabelMapVolumeNode on the baseline CT's grid, value = track id
    followupTracks: object  # vtkMRMLLabelMapVolumeNode on the follow-up CT's grid, the same id for the same lesion
    registeredFollowup: object  # vtkMRMLScalarVolumeNode: the follow-up CT carried onto the baseline grid
    registeredFollowupTracks: object  # vtkMRMLLabelMapVolumeNode: follow-up track ids on the baseline grid
    summary: dict = field(default_factory=dict)  # totals, counts per status, RECIST-style aid, registration quality

    def nodes(self) -> list:
        """Every node created, for removal."""
        return [self.table, self.baselineTracks, self.followupTracks, self.registeredFollowup, self.registeredFollowupTracks]


def labelsFromSegmentation(segmentationNode, volumeNode) -> np.ndarray:
    """(z, y, x) uint8 0/1/2 label map on the volume's grid from the "Liver" and "Liver tumor" segments."""
    from LiverTumorSegLib.errors import InvalidInputError
    from LiverTumorSegLib.terminology import SEGMENTS

    segmentation = segmentationNode.GetSegmentation()
    labels = np.zeros(nodes.arrayShape(volumeNode), np.uint8)
    found = []
    for spec in SEGMENTS:  # liver first, then tumor on top
        segmentId = segmentation.GetSegmentIdBySegmentName(spec.name)
        if segmentId:
            labels[slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode) > 0] = spec.label
            found.append(spec.name)
    if not found:
        raise InvalidInputError(f"segmentation '{segmentationNode.GetName()}' has no segment named "
                                f"{' or '.join(s.name for s in SEGMENTS)}: segment the CT with this module first")
    return labels


def compareNodes(baselineVolume, followupVolume, baselineSegmentation=None, followupSegmentation=None,
                 config=None, progress: Optional[Callable[[float, str], None]] = None) -> ComparisonNodes:
    """Compare two CTs of one patient lesion by lesion and add the results to the scene (can be used without GUI).

    A volume given without its segmentation is segmented here, in this process (slow: prefer segmenting with the
    module first). Raises the library's typed errors (InvalidInputError, RegistrationError); adds no node then.
    """
    requireDependencies()
    from LiverTumorSegLib.followup import CompareConfig, compare

    labels = [labelsFromSegmentation(s, v) if s is not None else None
              for s, v in ((baselineSegmentation, baselineVolume), (followupSegmentation, followupVolume))]
    result = compare(nodes.volumeFromNode(baselineVolume), nodes.volumeFromNode(followupVolume),
                     baseline_labels=labels[0], followup_labels=labels[1], config=config or CompareConfig(), progress=progress)
    return _addResultNodes(result, baselineVolume, followupVolume)


def _addResultNodes(result, baselineVolume, followupVolume) -> ComparisonNodes:
    """Table, track label maps and the registered follow-up as new nodes named after the follow-up."""
    import SimpleITK as sitk
    from LiverTumorSegLib import Geometry
    from LiverTumorSegLib.followup import registered_followup

    def volume(image, name: str, className: str):
        return slicer.util.addVolumeFromArray(sitk.GetArrayFromImage(image), Geometry.of(image).ijk_to_ras(),
                                              f"{followupVolume.GetName()} {name}", className)

    registeredCt, registeredTracks = registered_followup(result)
    table = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", f"{followupVolume.GetName()} lesion changes")
    fillChangeTable(table, result.rows())
    return ComparisonNodes(
        table, volume(result.baseline_tracks, "tracks at baseline", "vtkMRMLLabelMapVolumeNode"),
        volume(result.followup_tracks, "tracks", "vtkMRMLLabelMapVolumeNode"),
        volume(registeredCt, "registered to baseline", "vtkMRMLScalarVolumeNode"),
        volume(registeredTracks, "tracks registered to baseline", "vtkMRMLLabelMapVolumeNode"), result.summary())


def fillChangeTable(tableNode, rows: list) -> None:
    """Replace the table's content with the change rows (text: status and ids; numbers: ml, %, mm; blank = nan)."""
    from LiverTumorSegLib.followup.outputs import change_columns

    tableNode.RemoveAllColumns()
    tableNode.SetUseColumnTitleAsColumnHeader(True)
    tableNode.SetLocked(True)
    for name in change_columns():
        column = vtk.vtkStringArray() if name in TEXT_COLUMNS else vtk.vtkDoubleArray()
        column.SetName(name)
        for row in rows:
            value = row[name]
            column.InsertNextValue(str(value) if name in TEXT_COLUMNS else (math.nan if value is None else float(value)))
        tableNode.AddColumn(column)
        tableNode.SetColumnTitle(name, nodes.columnTitle(name))
    tableNode.Modified()


def trackIdAtRow(tableNode, row: int) -> int:
    """The track id in row `row` of a change table node (LiverTumorSegError if out of range)."""
    from LiverTumorSegLib.errors import LiverTumorSegError

    if tableNode is None or not 0 <= row < tableNode.GetNumberOfRows():
        raise LiverTumorSegError(f"no lesion track in row {row} of the change table")
    return int(tableNode.GetTable().GetValue(int(row), tableNode.GetColumnIndex("track_id")).ToInt())


def trackPosition(result: ComparisonNodes, trackId: int, when: str = "baseline") -> Optional[tuple]:
    """RAS (mm) of the voxel of track `trackId` nearest its centre, in the "baseline", "followup" (its own grid) or
    "registered" (follow-up on the baseline grid) label map: a point inside the lesion even when it is not convex;
    None when the lesion is absent at that time.

    With the registered follow-up shown over the baseline, the baseline (or registered) position shows both times.
    """
    labelNode = {"baseline": result.baselineTracks, "followup": result.followupTracks,
                 "registered": result.registeredFollowupTracks}[when]
    zyx = np.argwhere(slicer.util.arrayFromVolume(labelNode) == trackId)
    if len(zyx) == 0:
        return None
    matrix = nodes.ijkToRas(labelNode)
    ras = zyx[:, ::-1] @ np.transpose(matrix[:3, :3]) + matrix[:3, 3]
    return tuple(float(v) for v in ras[np.argmin(np.linalg.norm(ras - ras.mean(axis=0), axis=1))])
