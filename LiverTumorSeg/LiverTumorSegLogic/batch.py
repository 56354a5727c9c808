"""Batch segmentation from the Python console: one `<case>.seg.nrrd` and one `<case>_lesions.csv` per CT."""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import slicer

from . import nodes
from .engine_process import Progress

if TYPE_CHECKING:
    from .options import RunOptions


class LiverTumorSegLogic(Protocol):
    """What the batch needs of the module logic (logic.LiverTumorSegLogic), named here so batch does not import it."""

    def segmentVolume(self, volume, options: "RunOptions", progress=None, cancel=None): ...
    def applyResult(self, volumeNode, result, segmentationNode=None, replaceSegments: bool = False, liverOnly: bool = False): ...
    def lesionTableNode(self, segmentationNode): ...

log = logging.getLogger(__name__)
SEGMENTATION_SUFFIX = ".seg.nrrd"
LESIONS_SUFFIX = "_lesions.csv"


@dataclass
class CaseReport:
    """What happened to one input: status "done", "skipped", "failed" or "cancelled", files and numbers."""

    input: str
    status: str
    segmentationFile: str = ""
    lesionsFile: str = ""
    message: str = ""
    seconds: float = 0.0
    summary: dict = field(default_factory=dict)


def caseNames(paths: list[Path]) -> list[str]:
    """Unique output base names, by the library's rule (the same as the CLI's)."""
    from LiverTumorSegLib.outputs import case_names

    return case_names(paths)


def nameClash(paths: list[Path], names: list[str], index: int) -> str:
    """The earlier input of this batch with the same output name as input `index` ("" if none)."""
    earlier = [str(p) for p, n in zip(paths[:index], names[:index]) if n == names[index]]
    return earlier[0] if earlier else ""


def outputFiles(outputDir: Path, name: str) -> tuple[Path, Path]:
    """(segmentation, lesion CSV) paths of case `name`."""
    return outputDir / f"{name}{SEGMENTATION_SUFFIX}", outputDir / f"{name}{LESIONS_SUFFIX}"


def processFiles(logic: "LiverTumorSegLogic", inputPaths, outputDir: Path, options: "RunOptions", overwrite: bool,
                 progress: Progress | None, cancel: threading.Event | None) -> list[CaseReport]:
    """Segment every input in turn; a failure is reported and skipped, a cancel stops after the current case."""
    from LiverTumorSegLib.io import expand_inputs

    paths = expand_inputs(inputPaths)  # folders of CT files are expanded; DICOM folders stay one case
    outputDir.mkdir(parents=True, exist_ok=True)
    reports: list[CaseReport] = []
    names = caseNames(paths)
    for index, (path, name) in enumerate(zip(paths, names)):
        caseProgress = _caseProgress(progress, index, len(paths), name)
        clash = nameClash(paths, names, index)
        if clash:
            report = CaseReport(str(path), "failed", message=f"same output name '{name}' as {clash}: "
                                                             "segment it into another output folder")
        else:
            report = processCase(logic, path, outputDir, name, options, overwrite, caseProgress, cancel)
        log.info("%s: %s %s", path, report.status, report.message)
        reports.append(report)
        if report.status == "cancelled":
            break
    return reports


def _caseProgress(progress: Progress | None, index: int, count: int, name: str) -> Progress | None:
    """Map one case's progress (0..1) onto the whole batch, prefixing the case name."""
    if progress is None:
        return None
    return lambda fraction, message: progress((index + fraction) / count, f"{name} ({index + 1}/{count}): {message}")


def processCase(logic: "LiverTumorSegLogic", path: Path, outputDir: Path, name: str, options: "RunOptions",
                overwrite: bool, progress: Progress | None, cancel: threading.Event | None) -> CaseReport:
    """Read, segment and save one case; never raises for a bad case (the report says what went wrong)."""
    from LiverTumorSegLib.errors import CancelledError, LiverTumorSegError
    from LiverTumorSegLib.outputs import SKIPPED, is_complete

    segmentationFile, lesionsFile = outputFiles(outputDir, name)
    report = CaseReport(str(path), "done", str(segmentationFile), str(lesionsFile))
    if not overwrite and is_complete([segmentationFile, lesionsFile]):  # an incomplete case is redone
        report.status, report.message = SKIPPED, "outputs are complete from an earlier run (pass overwrite=True to redo)"
        return report
    start, created = time.perf_counter(), []
    try:
        result = segmentAndSave(logic, path, outputDir, name, options, progress, cancel, created)
        report.summary, report.message = result.summary(), "; ".join(result.warnings)
    except CancelledError as exc:
        report.status, report.message = "cancelled", str(exc)
    except LiverTumorSegError as exc:
        report.status, report.message = "failed", str(exc)
    except Exception as exc:  # keep the batch going; the traceback goes to the log
        log.exception("unexpected error on %s", path)
        report.status, report.message = "failed", f"unexpected error: {exc}"
    finally:
        nodes.removeNodes(created)
    if report.status in ("failed", "cancelled"):  # name only files that exist
        report.segmentationFile = report.lesionsFile = ""
    report.seconds = round(time.perf_counter() - start, 2)
    return report


def segmentAndSave(logic: "LiverTumorSegLogic", path: Path, outputDir: Path, name: str, options: "RunOptions",
                   progress: Progress | None, cancel: threading.Event | None, created: list):
    """Segment one CT file or DICOM folder and write its outputs; nodes it adds go to `created`."""
    from LiverTumorSegLib.io import read_image
    from LiverTumorSegLib.modality import MR, resolve_modality

    image = read_image(path)
    modality, _ = resolve_modality(options.modality or None, image)  # the engine gets voxels only: no DICOM tags
    options = replace(options, modality=modality, liverOnly=options.liverOnly or modality == MR)
    result = logic.segmentVolume(image, options, progress, cancel)
    volumeNode = volumeNodeFromImage(image, name)
    created.append(volumeNode)
    segmentationNode = logic.applyResult(volumeNode, result, liverOnly=options.liverOnly)
    created += [segmentationNode, logic.lesionTableNode(segmentationNode)]
    writeOutputs(outputDir, [(segmentationNode, outputFiles(outputDir, name)[0]),
                             (logic.lesionTableNode(segmentationNode), outputFiles(outputDir, name)[1])])
    return result


def volumeNodeFromImage(image, name: str):
    """A scalar volume node holding a 3-D SimpleITK image's voxels on its exact grid."""
    import SimpleITK as sitk
    from LiverTumorSegLib import Geometry

    return slicer.util.addVolumeFromArray(sitk.GetArrayFromImage(image), Geometry.of(image).ijk_to_ras(), name)


def writeOutputs(outputDir: Path, targets: list) -> None:
    """Write each (node, path) with Slicer's storage nodes into a scratch folder, then move files in order."""
    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=outputDir))
    try:
        for node, path in targets:
            writeNode(node, scratch / path.name)
        mains = [scratch / path.name for _, path in targets]  # moved last, in order: both exist = complete
        for written in [f for f in scratch.iterdir() if f not in mains] + mains:
            os.replace(written, outputDir / written.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def writeNode(node, path: Path) -> None:
    """Write a storable node to `path` with its default storage node (not added to the scene)."""
    from LiverTumorSegLib.errors import LiverTumorSegError

    storageNode = createStorageNode(node)
    storageNode.SetFileName(str(path))
    if not storageNode.WriteData(node):
        raise LiverTumorSegError(f"cannot write {path.name} to {path.parent}")


def createStorageNode(node):
    """The node's default storage node, owned by Python only (released when it goes out of use).

    CreateDefaultStorageNode returns a new reference that the caller must release (it is not marked
    VTK_NEWINSTANCE), so Python would otherwise keep one reference forever, as sitkUtils notes.
    """
    storageNode = node.CreateDefaultStorageNode()
    storageNode.UnRegister(None)
    return storageNode
