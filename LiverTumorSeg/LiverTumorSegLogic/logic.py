"""LiverTumorSegLogic: segment CT volume nodes into editable Liver / Liver tumor segments (no GUI needed)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from . import batch, nodes
from .dependencies import requireDependencies
from .engine_process import EngineRun, Progress, probeDevices, runToCompletion
from . import presets
from .presets import windowPresets

if TYPE_CHECKING:
    import SimpleITK as sitk
    from LiverTumorSegLib import SegmentationResult, Volume


@dataclass(frozen=True)
class RunOptions:
    """How to run the cascade: device ("auto" | "cpu" | "cuda"), fast mode, liver only, smallest lesion kept."""

    device: str = "auto"
    fast: bool = False
    liverOnly: bool = False
    minLesionMm3: float | None = None  # None: the library's default
    modelSet: str = ""  # a model set of the library's models folder; "" = its default (or "fast" with `fast`)
    modality: str = ""  # "ct" | "mr"; "" = the library's choice (CT for voxels without DICOM tags)

    def segmentKwargs(self) -> dict:
        """The keyword options of LiverTumorSegLib.segment for this run: the one place to add a new option."""
        kwargs = {"device": self.device, "fast": self.fast, "liver_only": self.liverOnly}
        if self.modelSet:
            kwargs["model_set"] = self.modelSet
        if self.modality:
            kwargs["modality"] = self.modality
        if self.minLesionMm3 is not None:
            kwargs["min_lesion_mm3"] = float(self.minLesionMm3)
        return kwargs


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
    _devices: tuple[list[str], str] | None = None  # probeDevices() result, shared by all instances

    def process(self, volumeNode, segmentationNode=None, device: str = "auto", fast: bool = False,
                liverOnly: bool = False, minLesionMm3: float | None = None, progress: Progress | None = None,
                cancel: threading.Event | None = None, replaceSegments: bool = False, modality: str | None = None):
        """Segment the liver and liver tumors of a CT (or the liver of an MR) volume node; return the segmentation node.

        Can be used without GUI widget. By default a new segmentation node is created; segments
        "Liver" / "Liver tumor" of an existing `segmentationNode` are overwritten only with
        `replaceSegments=True`. Also creates a lesion table node (see `lesionTableNode`).
        `progress(fraction, message)` reports each stage; setting `cancel` stops within about a second
        with CancelledError. Bad input raises InvalidInputError / NotCTError; in every error case the
        scene is left as it was. `modality` "ct" | "mr" (None: the volume's DICOM Modality tag, else CT); an MR
        gets the liver only (see `runOptions`).
        """
        options = self.runOptions(volumeNode, device, fast, liverOnly, minLesionMm3, modality)
        self.checkOutput(segmentationNode, replaceSegments, options.liverOnly)
        result = self.segmentVolume(self.volumeFromNode(volumeNode), options, progress, cancel)
        return self.applyResult(volumeNode, result, segmentationNode, replaceSegments, options.liverOnly)

    @staticmethod
    def runOptions(volumeNode, device: str = "auto", fast: bool = False, liverOnly: bool = False,
                   minLesionMm3: float | None = None, modality: str | None = None) -> RunOptions:
        """RunOptions for a volume node: `modality` else its DICOM Modality tag; an MR is segmented liver only
        (the lesion network is not validated on MR), so no "Liver tumor" segment is written or replaced."""
        modality = (modality or nodes.dicomModality(volumeNode)).lower()
        return RunOptions(device, fast, liverOnly or modality == "mr", minLesionMm3, modality=modality)

    def processFiles(self, inputPaths: Sequence[str | Path], outputDir: str | Path, overwrite: bool = False,
                     device: str = "auto", fast: bool = False, liverOnly: bool = False,
                     minLesionMm3: float | None = None, progress: Progress | None = None,
                     cancel: threading.Event | None = None) -> list[batch.CaseReport]:
        """Segment CT files, DICOM series folders or folders of CT files into `outputDir`.

        Writes `<case>.seg.nrrd` (segments "Liver" / "Liver tumor") and `<case>_lesions.csv` per case.

        Can be used without GUI widget. Cases whose outputs exist are skipped unless `overwrite`;
        a failing case is reported and the batch goes on. Returns one CaseReport per input (status
        "done", "skipped" or "failed"; "cancelled" for the case a cancel interrupted, which ends the
        batch). Nodes created on the way are removed again.
        """
        options = RunOptions(device, fast, liverOnly, minLesionMm3)
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
        ijkToRas = nodes.ijkToRas(volumeNode)
        for spec in self.segmentSpecs(liverOnly):
            nodes.writeSegment(segmentationNode, spec, result.labels == spec.label, ijkToRas)
        tableNode = nodes.lesionTableNode(segmentationNode)
        if tableNode is None:
            tableNode = nodes.lesionTableNode(segmentationNode, create=True)
            created.append(tableNode)
            nodes.placeBeside(tableNode, volumeNode)
        nodes.fillLesionTable(tableNode, result.lesions)
        nodes.storeSummary(segmentationNode, result)

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
        """World RAS position (mm) of a lesion's centroid, for jumping slice views to it."""
        return nodes.lesionCentroidWorld(nodes.lesionTableNode(segmentationNode), lesionId, volumeNode)

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
        """Devices the engine can really use here: ["cpu"] or ["cpu", "cuda"] (checked once, in the engine process)."""
        requireDependencies()
        if LiverTumorSegLogic._devices is None:
            LiverTumorSegLogic._devices = probeDevices(self.engineCommand)
        return list(LiverTumorSegLogic._devices[0])

    def cudaUnavailableReason(self) -> str:
        """Why CUDA cannot be used here ("" when it can), from the same one-time engine check."""
        self.availableDevices()
        return LiverTumorSegLogic._devices[1]
