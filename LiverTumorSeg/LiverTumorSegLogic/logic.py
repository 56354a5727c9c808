"""LiverTumorSegLogic: segment CT volume nodes into editable Liver / Liver tumor segments (no GUI needed)."""
from __future__ import annotations

import threading

import numpy as np
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from . import batch, editing, nodes
from .dependencies import requireDependencies
from .engine_process import EngineProbe, EngineRun, EngineTask, Progress, probeEngine, runToCompletion
from .options import RunOptions
from . import presets
from .presets import windowPresets

if TYPE_CHECKING:
    import SimpleITK as sitk
    from LiverTumorSegLib import SegmentationResult, Volume


class LiverTumorSegLogic:
    """Liver and liver-tumor segmentation of CT volume nodes, usable from Slicer's Python console.

    The logic raises the library's typed exceptions (LiverTumorSegLib.errors) and never shows dialogs.
    Example::

        logic = LiverTumorSegLogic()
        segmentationNode = logic.process(slicer.util.getNode("CT"))

    The engine runs in a child process (see engine_process.py); `engineCommand` replaces its command
    line (`[PythonSlicer, engine_worker.py]`) when set.
    """

    engineCommand: list[str] | None = None
    _devices: EngineProbe | None = None  # probeEngine() result, shared by all instances
    _deviceCheck: threading.Thread | None = None  # the thread computing _devices
    _deviceLock = threading.Lock()

    def process(self, volumeNode, segmentationNode=None, device: str = "auto", liverOnly: bool = False,
                minLesionMm3: float | None = None, progress: Progress | None = None,
                cancel: threading.Event | None = None, replaceSegments: bool = False, modelSet: str = "",
                modality: str | None = None):
        """Segment the liver and liver tumors of a CT (or the liver of an MR) volume node; return the segmentation node.

        Can be used without GUI widget. By default a new segmentation node is created; segments
        "Liver" / "Liver tumor" of an existing `segmentationNode` are overwritten only with
        `replaceSegments=True`. Also creates a lesion table node (see `lesionTableNode`).
        `progress(fraction, message)` reports each stage; setting `cancel` stops within about a second
        with CancelledError. Bad input raises InvalidInputError / NotCTError; in every error case the
        scene is left as it was. `modality` "ct" | "mr" (None: the volume's DICOM Modality tag, else CT); an MR
        gets the liver only (see `runOptions`).
        """
        options = self.runOptions(volumeNode, device, liverOnly, minLesionMm3, modality, modelSet)
        self.checkOutput(segmentationNode, replaceSegments, options.liverOnly)
        result = self.segmentVolume(self.volumeFromNode(volumeNode), options, progress, cancel)
        return self.applyResult(volumeNode, result, segmentationNode, replaceSegments, options.liverOnly)

    @staticmethod
    def runOptions(volumeNode, device: str = "auto", liverOnly: bool = False, minLesionMm3: float | None = None,
                   modality: str | None = None, modelSet: str = "") -> RunOptions:
        """RunOptions for a volume node: `modality` else its DICOM Modality tag; an MR is segmented liver only
        (the lesion network is not validated on MR), so no "Liver tumor" segment is written or replaced."""
        modality = (modality or nodes.dicomModality(volumeNode)).lower()
        return RunOptions(device, liverOnly or modality == "mr", minLesionMm3, modelSet, modality=modality)

    def processFiles(self, inputPaths: Sequence[str | Path], outputDir: str | Path, overwrite: bool = False,
                     device: str = "auto", liverOnly: bool = False,
                     minLesionMm3: float | None = None, progress: Progress | None = None,
                     cancel: threading.Event | None = None, modelSet: str = "") -> list[batch.CaseReport]:
        """Segment CT files, DICOM series folders or folders of CT files into `outputDir`.

        Writes `<case>.seg.nrrd` (segments "Liver" / "Liver tumor") and `<case>_lesions.csv` per case.

        Can be used without GUI widget. Cases whose outputs exist are skipped unless `overwrite`;
        a failing case is reported and the batch goes on. Returns one CaseReport per input (status
        "done", "skipped" or "failed"; "cancelled" for the case a cancel interrupted, which ends the
        batch). Nodes created on the way are removed again.
        """
        options = RunOptions(device, liverOnly, minLesionMm3, modelSet)
        return batch.processFiles(self, inputPaths, Path(outputDir), options, overwrite, progress, cancel)

    def volumeFromNode(self, volumeNode) -> "Volume":
        """The node's voxels (z, y, x) and geometry as a library Volume; InvalidInputError if unusable."""
        requireDependencies()
        return nodes.volumeFromNode(volumeNode)

    def startSegmentation(self, volume: "Volume | sitk.Image", options: RunOptions = RunOptions()) -> EngineRun:
        """Start the engine process on a Volume or SimpleITK image; poll the returned run's `state()`."""
        requireDependencies()
        voxels, geometry = nodes.voxelsAndGeometry(volume)
        return EngineRun(voxels, geometry, options.segmentKwargs(), self.engineCommand).start()

    def segmentVolume(self, volume: "Volume | sitk.Image", options: RunOptions = RunOptions(),
                      progress: Progress | None = None, cancel: threading.Event | None = None) -> "SegmentationResult":
        """Run the library's cascade in the engine process and wait for it (touches no MRML).

        `progress(fraction, message)` gets every stage; setting `cancel` stops the process and raises
        CancelledError. A crashed or killed engine raises EngineError; bad input the library's errors.
        """
        requireDependencies()
        voxels, geometry = nodes.voxelsAndGeometry(volume)
        run = EngineRun(voxels, geometry, options.segmentKwargs(), self.engineCommand)
        return runToCompletion(run, progress, cancel)

    @staticmethod
    def modelSets() -> list:
        """The model sets of the library's models folder (its sets.json), the default first; [] if unreadable."""
        from LiverTumorSegLib.config import models_dir
        from LiverTumorSegLib.errors import LiverTumorSegError
        from LiverTumorSegLib.model_sets import list_model_sets

        try:
            return list_model_sets(models_dir())
        except LiverTumorSegError:
            return []

    @staticmethod
    def modelSetLine(result: "SegmentationResult") -> str:
        """One line naming the model set that ran and its measured accuracy (from the models folder's sets.json)."""
        if not getattr(result, "model_set", ""):
            return ""
        from LiverTumorSegLib.config import models_dir
        from LiverTumorSegLib.errors import LiverTumorSegError
        from LiverTumorSegLib.model_sets import list_model_sets

        try:
            accuracy = next((s.accuracy for s in list_model_sets(models_dir()) if s.name == result.model_set), "")
        except LiverTumorSegError:
            accuracy = ""
        return f"Model set {result.model_set}" + (f": {accuracy}" if accuracy else " (accuracy not measured)")

    @staticmethod
    def engineLine(result: "SegmentationResult") -> str:
        """The engines that ran the result's networks, e.g. "openvino 2025.3.0" ("" when not recorded)."""
        return ", ".join(sorted({m["engine"] for m in (getattr(result, "models", None) or {}).values() if m.get("engine")}))

    def checkOutput(self, segmentationNode, replaceSegments: bool, liverOnly: bool = False) -> None:
        """Raise OutputExistsError when writing would overwrite segments and `replaceSegments` is False."""
        if segmentationNode is None or replaceSegments:
            return
        from LiverTumorSegLib.errors import OutputExistsError

        clash = sorted(set(nodes.segmentNames(segmentationNode)) & {s.name for s in self.segmentSpecs(liverOnly)})
        if clash:
            raise OutputExistsError(
                f"segmentation '{segmentationNode.GetName()}' already has segment(s) {', '.join(clash)}; "
                "segment into a new segmentation, or pass replaceSegments=True to overwrite them (manual edits are lost)")

    def applyResult(self, volumeNode, result: "SegmentationResult", segmentationNode=None,
                    replaceSegments: bool = False, liverOnly: bool = False):
        """Put a result computed on `volumeNode`'s voxels into a (new) segmentation node and its lesion table."""
        from LiverTumorSegLib.errors import InvalidInputError

        nodes.checkVolumeNode(volumeNode)
        self.checkOutput(segmentationNode, replaceSegments, liverOnly)
        if result.labels.shape != nodes.arrayShape(volumeNode):
            raise InvalidInputError(f"volume '{volumeNode.GetName()}' changed size while it was being segmented")
        if segmentationNode is not None and segmentationNode.GetScene() is not volumeNode.GetScene():
            raise InvalidInputError(f"segmentation '{segmentationNode.GetName()}' is not in the volume's scene")
        created = []
        try:
            if segmentationNode is None:
                segmentationNode = nodes.createSegmentationNode(volumeNode)
                created.append(segmentationNode)
            elif set(nodes.segmentNames(segmentationNode)) <= {s.name for s in self.segmentSpecs(False)}:
                nodes.adoptVolumeGeometry(segmentationNode, volumeNode)
            if segmentationNode.GetTransformNodeID() != volumeNode.GetTransformNodeID():
                raise InvalidInputError(f"segmentation '{segmentationNode.GetName()}' and volume '{volumeNode.GetName()}' "
                                        "are under different transforms; segment into a new segmentation")
            self._writeResult(volumeNode, result, segmentationNode, liverOnly, created)
        except Exception:
            nodes.removeNodes(created)
            raise
        return segmentationNode

    def _writeResult(self, volumeNode, result: "SegmentationResult", segmentationNode, liverOnly: bool,
                     created: list) -> None:
        """Write segments, lesion table and summary attributes (new nodes are appended to `created`)."""
        from LiverTumorSegLib import LIVER

        ijkToRas = nodes.ijkToRas(volumeNode)
        keptTumor = liverOnly and "Liver tumor" in nodes.segmentNames(segmentationNode)
        for spec in self.segmentSpecs(liverOnly):
            mask = self.segmentMask(result.labels, spec.label)
            if keptTumor and spec.label == LIVER:  # the kept tumors stay inside the new liver
                mask = mask | editing.segmentArray(segmentationNode, "Liver tumor", volumeNode)
            nodes.writeSegment(segmentationNode, spec, mask, ijkToRas)
        segmentationNode.SetNodeReferenceID(editing.VOLUME_ROLE, volumeNode.GetID())
        if nodes.lesionTableNode(segmentationNode) is None:
            created.append(nodes.lesionTableNode(segmentationNode, create=True))
            nodes.placeBeside(created[-1], volumeNode)
        if keptTumor:  # a liver-only re-run keeps the tumor segment: the table and summary describe it
            result = editing.resultFromLabels(volumeNode, editing.labelsOf(segmentationNode, volumeNode),
                                              {"device": result.device, "model_set": result.model_set})
        nodes.fillLesionTable(nodes.lesionTableNode(segmentationNode), result.lesions)
        nodes.storeSummary(segmentationNode, result)

    # Correct and re-run (the Liver segment edited in the Segment Editor, lesions added or removed)

    def findTumorsRun(self, volumeNode, segmentationNode, options: RunOptions = RunOptions()) -> EngineRun:
        """An engine run (not started) of the tumor stage alone inside the segmentation's (edited) Liver."""
        requireDependencies()
        liver = self._editedLiver(volumeNode, segmentationNode)
        voxels, geometry = nodes.voxelsAndGeometry(self.volumeFromNode(volumeNode))
        return EngineRun(voxels, geometry, options.segmentKwargs(), self.engineCommand, EngineTask(liverMask=liver))

    def findTumors(self, volumeNode, segmentationNode, options: RunOptions = RunOptions(),
                   progress: Progress | None = None, cancel: threading.Event | None = None):
        """Re-run only the tumor stage inside the edited "Liver" segment; replace "Liver tumor" and the table.

        Can be used without GUI widget; `undo(segmentationNode)` puts the previous tumors back.
        """
        result = runToCompletion(self.findTumorsRun(volumeNode, segmentationNode, options), progress, cancel)
        return self.applyTumors(volumeNode, segmentationNode, result)

    def applyTumors(self, volumeNode, segmentationNode, result: "SegmentationResult"):
        """Put a Find-tumors result into the segmentation: "Liver tumor", the lesion table and the summary."""
        from LiverTumorSegLib import TUMOR

        self._checkEditable(volumeNode, segmentationNode, result.labels.shape)
        liver = editing.segmentArray(segmentationNode, "Liver", volumeNode)
        editing.snapshot(segmentationNode)
        self._writeEdited(volumeNode, segmentationNode, (result.labels == TUMOR) & liver, result)  # in the edited liver only
        return segmentationNode

    def addLesionRun(self, volumeNode, segmentationNode, rasPoint, options: RunOptions = RunOptions()) -> EngineRun:
        """An engine run (not started) that segments the one lesion at a world RAS point inside the Liver."""
        requireDependencies()
        liver = self._editedLiver(volumeNode, segmentationNode)
        ijk = self._pointIndex(volumeNode, rasPoint)
        voxels, geometry = nodes.voxelsAndGeometry(self.volumeFromNode(volumeNode))
        return EngineRun(voxels, geometry, options.segmentKwargs(), self.engineCommand,
                         EngineTask(liverMask=liver, lesionAt=ijk))

    def addLesionAt(self, volumeNode, segmentationNode, rasPoint, options: RunOptions = RunOptions(),
                    progress: Progress | None = None, cancel: threading.Event | None = None) -> int:
        """Segment a lesion the model missed around a world RAS point; add it to "Liver tumor" and the table.

        Returns the new lesion's id in the table. Raises LiverTumorSegError when no lesion is found there.
        Can be used without GUI widget; `undo(segmentationNode)` removes it again.
        """
        mask = runToCompletion(self.addLesionRun(volumeNode, segmentationNode, rasPoint, options), progress, cancel)
        return self.applyAddedLesion(volumeNode, segmentationNode, mask, rasPoint)

    def applyAddedLesion(self, volumeNode, segmentationNode, mask, rasPoint) -> int:
        """Add a lesion mask (z, y, x on the volume's grid) to "Liver tumor" (and "Liver"); return its table id."""
        from LiverTumorSegLib.errors import LiverTumorSegError

        self._checkEditable(volumeNode, segmentationNode, mask.shape)
        if not mask.any():
            raise LiverTumorSegError(f"no lesion found at {tuple(round(v, 1) for v in rasPoint)}: place the point on the "
                                     "lesion's centre, or draw the lesion in the Segment Editor")
        editing.snapshot(segmentationNode)
        tumor = editing.segmentArray(segmentationNode, "Liver tumor", volumeNode) | mask
        result = self._writeEdited(volumeNode, segmentationNode, tumor)
        lesion = editing.componentAt(tumor, self._pointIndex(volumeNode, rasPoint), tuple(volumeNode.GetSpacing())[::-1])
        return self._lesionIdAt(volumeNode, result, lesion if lesion.any() else mask)

    def removeLesionAt(self, segmentationNode, rasPoint, volumeNode=None) -> int:
        """Remove the lesion under a world RAS point from "Liver tumor" and its row; return its former id.

        `volumeNode` defaults to the CT the segmentation was made from. Raises LiverTumorSegError when no lesion
        is under the point. Can be used without GUI widget; `undo(segmentationNode)` puts it back.
        """
        requireDependencies()
        from LiverTumorSegLib.errors import LiverTumorSegError

        volumeNode = volumeNode or editing.referencedVolume(segmentationNode)
        self._checkEditable(volumeNode, segmentationNode, None)
        ijk = self._pointIndex(volumeNode, rasPoint)
        tumor = editing.segmentArray(segmentationNode, "Liver tumor", volumeNode)
        lesion = editing.componentAt(tumor, ijk, tuple(volumeNode.GetSpacing())[::-1])
        if not lesion.any():
            raise LiverTumorSegError(f"no lesion of '{segmentationNode.GetName()}' at {tuple(round(v, 1) for v in rasPoint)}")
        before = editing.resultFromLabels(volumeNode, editing.labelsOf(segmentationNode, volumeNode), {})
        lesionId = self._lesionIdAt(volumeNode, before, lesion)
        editing.snapshot(segmentationNode)
        self._writeEdited(volumeNode, segmentationNode, tumor & ~lesion)
        return lesionId

    @staticmethod
    def canUndo(segmentationNode) -> bool:
        """True when Find tumors / Add / Remove lesion on this segmentation can be undone."""
        return editing.canRestore(segmentationNode)

    @staticmethod
    def undo(segmentationNode) -> bool:
        """Undo the last Find tumors / Add / Remove lesion: segments, table and summary as before (False if none)."""
        return editing.restore(segmentationNode)

    def _editedLiver(self, volumeNode, segmentationNode):
        """The segmentation's "Liver" on the volume's grid; InvalidInputError when it is missing or empty."""
        from LiverTumorSegLib.errors import InvalidInputError

        self._checkEditable(volumeNode, segmentationNode, None)
        liver = editing.segmentArray(segmentationNode, "Liver", volumeNode)
        if not liver.any():
            raise InvalidInputError(f"segmentation '{segmentationNode.GetName()}' has no (or an empty) 'Liver' segment: "
                                    "segment the liver first, or draw it in the Segment Editor")
        return liver

    def _checkEditable(self, volumeNode, segmentationNode, shape) -> None:
        """InvalidInputError unless the volume is a CT in the segmentation's scene, on the grid of `shape`."""
        from LiverTumorSegLib.errors import InvalidInputError

        nodes.checkVolumeNode(volumeNode)
        if segmentationNode is None or segmentationNode.GetScene() is not volumeNode.GetScene():
            raise InvalidInputError("select a segmentation of this CT (made by this module or with a 'Liver' segment)")
        if shape is not None and tuple(shape) != nodes.arrayShape(volumeNode):
            raise InvalidInputError(f"volume '{volumeNode.GetName()}' changed size while it was being segmented")

    def _pointIndex(self, volumeNode, rasPoint) -> tuple[int, int, int]:
        """The voxel index (x, y, z) of a world RAS point; InvalidInputError outside the volume."""
        from LiverTumorSegLib.errors import InvalidInputError

        ijk = editing.worldToIjk(volumeNode, rasPoint)
        if not editing.insideVolume(volumeNode, ijk):
            raise InvalidInputError(f"the point {tuple(round(v, 1) for v in rasPoint)} is outside '{volumeNode.GetName()}'")
        return ijk

    def _writeEdited(self, volumeNode, segmentationNode, tumor, result=None):
        """Write "Liver tumor" (and "Liver" grown to hold it), then the table and summary measured from them."""
        from LiverTumorSegLib import LIVER, TUMOR
        from LiverTumorSegLib.terminology import SEGMENTS

        specs = {spec.label: spec for spec in SEGMENTS}
        ijkToRas = nodes.ijkToRas(volumeNode)
        liver = editing.segmentArray(segmentationNode, "Liver", volumeNode)
        if (tumor & ~liver).any():
            nodes.writeSegment(segmentationNode, specs[LIVER], liver | tumor, ijkToRas)
        nodes.writeSegment(segmentationNode, specs[TUMOR], tumor, ijkToRas)
        previous = nodes.readSummary(segmentationNode)
        if result is not None:
            previous = {"device": result.device, "model_set": result.model_set}
        measured = editing.resultFromLabels(volumeNode, editing.labelsOf(segmentationNode, volumeNode), previous)
        if result is not None:
            measured.warnings, measured.timings = list(result.warnings), dict(result.timings)
        tableNode = nodes.lesionTableNode(segmentationNode) or nodes.lesionTableNode(segmentationNode, create=True)
        nodes.fillLesionTable(tableNode, measured.lesions)
        nodes.storeSummary(segmentationNode, measured)
        return measured

    @staticmethod
    def _lesionIdAt(volumeNode, result, lesion) -> int:
        """The id in `result` of the lesion whose voxels are `lesion` (z, y, x): same size, nearest centroid."""
        zyx = np.argwhere(lesion)
        ras = (nodes.ijkToRas(volumeNode) @ np.append(zyx[:, ::-1].mean(0), 1.0))[:3]
        same = [l for l in result.lesions if l.voxels == len(zyx)] or result.lesions
        return min(same, key=lambda l: float(np.linalg.norm(np.asarray(l.centroid_ras) - ras))).id

    @staticmethod
    def segmentMask(labels, label: int):
        """The (z, y, x) bool mask of one segment: "Liver" holds its tumors (they overlap, as in LiTS)."""
        from LiverTumorSegLib import LIVER, TUMOR

        return (labels == LIVER) | (labels == TUMOR) if label == LIVER else labels == label

    @staticmethod
    def segmentSpecs(liverOnly: bool = False) -> list:
        """The library's segment specs (name, colour, SNOMED CT codes) this run writes."""
        from LiverTumorSegLib import LIVER
        from LiverTumorSegLib.terminology import SEGMENTS

        return [spec for spec in SEGMENTS if spec.label == LIVER or not liverOnly]

    @staticmethod
    def lesionTableNode(segmentationNode):
        """The lesion table node written with this segmentation node (None if there is none)."""
        return nodes.lesionTableNode(segmentationNode)

    @staticmethod
    def resultSummary(segmentationNode) -> dict[str, str]:
        """Liver volume, tumor volume and burden, lesion count, device, seconds and warnings of the last run."""
        return nodes.readSummary(segmentationNode)

    @staticmethod
    def lesionIdAtRow(tableNode, row: int) -> int:
        """The lesion id in a row of the lesion table node (what a click on that row of the table view means)."""
        return nodes.lesionIdAtRow(tableNode, row)

    @staticmethod
    def lesionCentroid(segmentationNode, lesionId: int, volumeNode=None) -> tuple[float, float, float]:
        """World RAS position (mm) of a lesion's centroid, for jumping slice views to it.

        Placed through the segmentation's own parent transform (that of the CT it was made from); `volumeNode`
        is ignored (kept for callers of earlier versions): the selected volume may be another one.
        """
        return nodes.lesionCentroidWorld(nodes.lesionTableNode(segmentationNode), lesionId, segmentationNode)

    @staticmethod
    def presetNames() -> list[str]:
        """Names of the library's HU window presets ("liver", "abdomen", ...)."""
        return list(windowPresets())

    @staticmethod
    def windowPreset(presetName: str):
        """The library's HU window preset of that name (a WindowPreset: name, level, width)."""
        return windowPresets()[presetName]

    def applyWindowPreset(self, volumeNode, presetName: str) -> None:
        """Set the volume's display window/level to a library preset such as "liver" or "abdomen".

        Works before the first-use install: the presets are read without importing the engine.
        """
        available = windowPresets()
        if presetName not in available:
            raise presets.errors().InvalidInputError(f"unknown window preset '{presetName}' (have {', '.join(available)})")
        nodes.checkVolumeNode(volumeNode)
        nodes.applyWindow(volumeNode, available[presetName])

    def availableDevices(self) -> list[str]:
        """Devices the engine can really use here: ["cpu"] or ["cpu", "cuda"] (checked once, in the engine process).

        Blocks until the check is done (seconds: it starts the engine); the panel uses startDeviceCheck().
        """
        requireDependencies()
        self.startDeviceCheck()
        LiverTumorSegLogic._deviceCheck.join()
        return list(LiverTumorSegLogic._devices.devices)

    def startDeviceCheck(self) -> None:
        """Start the one-time device check in a background thread (returns at once; see knownDevices)."""
        requireDependencies()
        with LiverTumorSegLogic._deviceLock:
            if LiverTumorSegLogic._deviceCheck is None:
                command = self.engineCommand

                def check() -> None:
                    LiverTumorSegLogic._devices = probeEngine(command)

                LiverTumorSegLogic._deviceCheck = threading.Thread(target=check, name="LiverTumorSeg-devices", daemon=True)
                LiverTumorSegLogic._deviceCheck.start()

    @staticmethod
    def knownDevices() -> tuple[list[str], str] | None:
        """(usable devices, why CUDA is not) once the background device check is done, else None."""
        devices = LiverTumorSegLogic._devices
        return (list(devices.devices), devices.reason) if devices is not None else None

    @staticmethod
    def knownCpuEngine() -> str | None:
        """What runs the networks on the CPU (e.g. "OpenVINO 2025.3.0 (float32; ...)") once the check is done, else None."""
        devices = LiverTumorSegLogic._devices
        return devices.cpuEngine if devices is not None else None

    @staticmethod
    def forgetDeviceCheck() -> None:
        """Drop the one-time engine check (after installing packages), so that the next one looks again."""
        with LiverTumorSegLogic._deviceLock:
            if LiverTumorSegLogic._deviceCheck is None or not LiverTumorSegLogic._deviceCheck.is_alive():
                LiverTumorSegLogic._devices, LiverTumorSegLogic._deviceCheck = None, None

    def cudaUnavailableReason(self) -> str:
        """Why CUDA cannot be used here ("" when it can), from the same one-time engine check."""
        self.availableDevices()
        return LiverTumorSegLogic._devices.reason
