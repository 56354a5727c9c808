"""LiverTumorSeg: automatic liver and liver-tumor segmentation of abdominal CT in 3D Slicer.

This file holds the Slicer-facing classes (module, parameter node, widget, self-test). The work is
done by the Qt-free `LiverTumorSegLogic` package next to it, which runs the bundled `LiverTumorSegLib`
engine in a child process (Slicer's PythonSlicer); the widget polls that process with a QTimer.
"""
import logging
import traceback
from typing import Annotated, Optional

import qt
import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from LiverTumorSegLogic import EngineError
from LiverTumorSegLogic import LiverTumorSegLogic as CoreLogic
from LiverTumorSegLogic import dependencies, slicercompat
from LiverTumorSegGui.compare_section import CompareSection

DEVICE_LABELS = {"auto": "Auto", "cpu": "CPU", "cuda": "GPU (CUDA)"}
POLL_INTERVAL_MS = 100
DEVICE_POLL_MS = 500  # how often the panel looks whether the background device check is done
#: The optional requirements (OpenVINO) last offered, space-joined: each pin is offered once, whatever the answer.
OPTIONAL_OFFERED_KEY = "LiverTumorSeg/OptionalPackagesOffered"
CANCEL_WAIT_S = 5.0  # closing the scene waits this long for a killed engine to be gone


#
# LiverTumorSeg
#


class LiverTumorSeg(ScriptedLoadableModule):
    """Module metadata (title, category, help) shown by Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Liver Tumor Segmentation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["LiverTumorSeg contributors"]
        self.parent.helpText = _(
            "Segments the liver and liver tumors in an abdominal CT with a fast two-stage (liver, then tumor) "
            "network cascade. Select the CT, press Apply, and edit the resulting <b>Liver</b> and "
            "<b>Liver tumor</b> segments in the Segment Editor. The lesion table lists every tumor with its "
            "volume, longest axial diameter and centroid; click a row to jump to it. Under <b>Correct and re-run</b>, "
            "Find tumors re-runs the tumor stage inside your edited Liver segment, Add / Remove lesion work on a "
            "placed point, and Undo puts the segmentation back. For batch processing "
            "from the Python console use "
            "<code>slicer.util.getModuleLogic(\"LiverTumorSeg\").processFiles(paths, outputDir)</code>. "
            "An MR (Modality: auto reads its DICOM tag, or choose MR) gets the <b>Liver</b> segment only: lesions "
            "are not segmented on MR. Research use only: not a medical device.")
        self.parent.acknowledgementText = _(
            "The demo CT is TotalSegmentator's abdominal example (Apache-2.0). See the extension's README for "
            "the training data and licences of the bundled models.")


#
# LiverTumorSegParameterNode
#


@parameterNodeWrapper
class LiverTumorSegParameterNode:
    """GUI state: input CT, output segmentation (None = create new) and run options."""

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"
    liverOnly: bool = False
    modality: Annotated[str, Choice(["auto", "ct", "mr"])] = "auto"  # auto: the volume's DICOM Modality tag
    # The library's default (PostprocessConfig.min_lesion_mm3); a test keeps the two equal.
    minLesionMm3: Annotated[float, WithinRange(0.0, 100000.0)] = 50.0


#
# LiverTumorSegWidget
#


class LiverTumorSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, options, Apply/Cancel with progress, results and lesion table."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None
        self._pending = None
        self._installDeclined = False
        self._installing = False
        self._shownSegmentation = None
        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(POLL_INTERVAL_MS)
        self._pollTimer.connect("timeout()", self.onPollTimer)

    def setup(self) -> None:
        """Load the .ui, connect signals and the parameter node."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LiverTumorSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = LiverTumorSegLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.liverWindowButton.connect("clicked()", lambda: self.onWindowPreset("liver"))
        self.ui.abdomenWindowButton.connect("clicked()", lambda: self.onWindowPreset("abdomen"))
        self.ui.lesionTableView.connect("clicked(QModelIndex)", self.onLesionClicked)
        self.ui.findTumorsButton.connect("clicked(bool)", self.onFindTumors)
        self.ui.addLesionButton.connect("clicked(bool)", self.onAddLesion)
        self.ui.removeLesionButton.connect("clicked(bool)", self.onRemoveLesion)
        self.ui.undoButton.connect("clicked(bool)", self.onUndo)
        self.ui.pointSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.ui.pointPlaceWidget.setCurrentNode)
        self.ui.pointSelector.connect("currentNodeChanged(vtkMRMLNode*)", lambda node: self._updateButtons())
        self._fillModelSets()
        self._compareSection = CompareSection(self.ui, self.ensureDependencies)  # "Compare with prior"
        self._setRunning(False)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        self._cancelRun()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        self._disconnectParameterGui()

    def onSceneStartClose(self, caller, event) -> None:
        """Stop any run, clear the results and drop the parameter node before the scene closes."""
        self._cancelRun()
        self._setRunning(False)
        self._clearResults()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        """Re-create the parameter node after the scene closed, if the module is shown."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Use the logic's parameter node; pick the first scalar volume as input if none is set."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode and not firstVolumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: Optional[LiverTumorSegParameterNode]) -> None:
        """Connect the GUI to a parameter node (and disconnect the previous one)."""
        self._disconnectParameterGui()
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # connectGui returns no tag on Slicer 5.8 (fixed in 5.10): connect by explicit mapping instead.
            mapping = slicercompat.parameterWidgets(vars(self.ui).values())
            self._parameterNodeGuiTag = self._parameterNode.connectParametersToGui(mapping)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self._labelDevices()
            self._updateButtons()

    def _disconnectParameterGui(self) -> None:
        """Disconnect the GUI from the current parameter node, if connected."""
        if self._parameterNode and self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNodeGuiTag = None

    def _labelDevices(self) -> None:
        """Name the device choices, marking those ONNX Runtime cannot use here as not available.

        The check starts the engine once (seconds), in a background thread: until it is done the
        choices stay as they are and this is called again by a timer, so the module opens at once.
        """
        combo = self.ui.deviceComboBox
        if dependencies.missingModules():
            combo.toolTip = _("Devices are checked after the first-use installation of ONNX Runtime.")
            return
        self.logic.startDeviceCheck()
        known = self.logic.knownDevices()
        if known is None:
            combo.toolTip = _("Checking which devices work here...")
            self.ui.cpuEngineLabel.text = _("checking...")
            qt.QTimer.singleShot(DEVICE_POLL_MS, self._labelDevices)
            return
        self.ui.cpuEngineLabel.text = self.logic.knownCpuEngine() or _("unknown")
        available, reason = known
        for index, device in enumerate(DEVICE_LABELS):
            usable = device == "auto" or device in available
            combo.setItemText(index, DEVICE_LABELS[device] + ("" if usable else _(" (not available)")))
        combo.toolTip = _("Available here: {devices}").format(devices=", ".join(DEVICE_LABELS[d] for d in available))
        if reason:
            combo.toolTip += " " + _("(no GPU: {reason})").format(reason=reason)

    def _fillModelSets(self) -> None:
        """List the models folder's model sets (its sets.json, default first); only "Default" before the install."""
        combo = self.ui.modelSetComboBox
        combo.clear()
        combo.addItem(_("Default"), "")
        if dependencies.missingModules():
            return
        for modelSet in self.logic.modelSets():
            combo.addItem(modelSet.name, modelSet.name)
            combo.setItemData(combo.count - 1, modelSet.description + ". " + modelSet.accuracy, qt.Qt.ToolTipRole)

    def _options(self) -> RunOptions:
        """The run options the panel shows."""
        p = self._parameterNode
        modelSet = self.ui.modelSetComboBox.currentData or ""
        modality = None if p.modality == "auto" or not p.inputVolume else p.modality
        if not p.inputVolume:
            return RunOptions(p.device, liverOnly=p.liverOnly, minLesionMm3=p.minLesionMm3, modelSet=str(modelSet))
        return self.logic.runOptions(p.inputVolume, p.device, p.liverOnly, p.minLesionMm3, modality, str(modelSet))

    def _updateButtons(self, caller=None, event=None) -> None:
        """Enable Apply and the window presets only when an input volume is selected."""
        hasInput = bool(self._parameterNode and self._parameterNode.inputVolume)
        busy = self._run is not None or self._installing
        self.ui.applyButton.enabled = hasInput and not busy
        target = self._targetSegmentation()
        hasPoint = self.ui.pointSelector.currentNode() is not None  # a point list; its last point is checked on click
        self.ui.findTumorsButton.enabled = hasInput and target is not None and not busy
        self.ui.addLesionButton.enabled = hasInput and target is not None and hasPoint and not busy
        self.ui.removeLesionButton.enabled = target is not None and hasPoint and not busy
        self.ui.undoButton.enabled = target is not None and self.logic.canUndo(target) and not busy
        self.ui.applyButton.toolTip = _("Segment liver and liver tumors") if hasInput else _("Select an input CT volume")
        self.ui.liverWindowButton.enabled = hasInput and not self._installing
        self.ui.abdomenWindowButton.enabled = hasInput and not self._installing

    def _setRunning(self, running: bool) -> None:
        """Switch the panel between idle and running (progress shown, Cancel enabled)."""
        self.ui.cancelButton.enabled = running
        self.ui.progressBar.visible = running
        self.ui.inputsCollapsibleButton.enabled = not running
        self.ui.optionsCollapsibleButton.enabled = not running
        self.ui.advancedCollapsibleButton.enabled = not running
        self.ui.correctCollapsibleButton.enabled = not running
        self._updateButtons()

    # Dependencies

    def ensureDependencies(self) -> bool:
        """True when the runtime packages are usable; otherwise ask once and install (or repair) them."""
        problems = dependencies.dependencyProblems()
        if self._installing:  # pip_install pumps the event loop: a second click must not start a second install
            return False
        optional = dependencies.optionalToOffer(str(qt.QSettings().value(OPTIONAL_OFFERED_KEY, "") or ""))
        if not problems:
            if optional:
                self._installOptional(optional, ask=True)
            return True
        arguments = dependencies.pipArguments(problems, dependencies.hasNvidiaGpu())
        requirements = [a for a in arguments if not a.startswith("--")]
        if self._installDeclined:
            self.ui.statusLabel.text = _("Needs {packages}; reopen Slicer to be asked again.").format(
                packages=", ".join(requirements))
            return False
        states = "\n".join(f"{name}: {reason}" for name, reason in problems.items())
        question = _("LiverTumorSeg needs these Python packages, which are not usable yet:\n\n{states}\n\n"
                     "Install {packages} now? This downloads them once (up to a few hundred MB) and may take a few "
                     "minutes.").format(states=states, packages=", ".join(requirements))
        if optional:
            question += "\n\n" + _("Also {packages}, optional: a faster CPU engine (skipped where it cannot be "
                                    "installed).").format(packages=", ".join(dependencies.withoutMarker(optional)))
        if not slicer.util.confirmOkCancelDisplay(question, windowTitle=_("Install dependencies")):
            self._installDeclined = True
            return False
        self._installing = True
        self._updateButtons()
        self.ui.statusLabel.text = _("Installing {packages}...").format(packages=", ".join(requirements))
        try:
            slicer.util.pip_install(arguments)
        except Exception as exc:  # pip failed: most often no internet; say how to install offline
            logging.error("LiverTumorSeg: installing %s failed: %s", requirements, exc)
            details = {"detailedText": dependencies.offlineAdvice(requirements) + f"\n\n{exc}"}  # never None
            slicer.util.errorDisplay(_("Failed to install {packages}.").format(packages=", ".join(requirements)), **details)
        finally:
            self._installing = False
            self._updateButtons()
            self.ui.statusLabel.text = ""
        if dependencies.missingModules():
            return False
        if optional:
            self._installOptional(optional, ask=False)
        self._labelDevices()
        self._fillModelSets()
        return True

    def _installOptional(self, requirements: list[str], ask: bool) -> None:
        """Install the optional packages (OpenVINO) once per pin; a failure only leaves the engine on ONNX Runtime."""
        qt.QSettings().setValue(OPTIONAL_OFFERED_KEY, " ".join(requirements))
        packages = ", ".join(dependencies.withoutMarker(requirements))
        if ask and not slicer.util.confirmOkCancelDisplay(
                _("Install {packages}? Optional: a faster CPU engine for LiverTumorSeg (a download of 30-81 MB, by platform; "
                  "without it LiverTumorSeg runs on ONNX Runtime). You are asked once.").format(packages=packages),
                windowTitle=_("Install optional package")):
            return
        self._installing = True
        self._updateButtons()
        self.ui.statusLabel.text = _("Installing {packages} (optional)...").format(packages=packages)
        try:
            failures = dependencies.installOptional(requirements, slicer.util.pip_install)
        finally:
            self._installing = False
            self._updateButtons()
        self.ui.statusLabel.text = _("{packages} could not be installed: running on ONNX Runtime (see the log).").format(
            packages=", ".join(dependencies.withoutMarker(list(failures)))) if failures else ""
        self.logic.forgetDeviceCheck()  # the CPU engine may have changed
        self._labelDevices()

    # Window presets

    def onWindowPreset(self, presetName: str) -> None:
        """Apply a library HU window preset to the input volume (works before the first-use install)."""
        with slicer.util.tryWithErrorDisplay(_("Cannot apply the window preset."), waitCursor=False):
            self.logic.applyWindowPreset(self._parameterNode.inputVolume, presetName)

    # Running

    def onApplyButton(self) -> None:
        """Start the segmentation in the engine process (the GUI stays responsive)."""
        if self._run is not None or not self.ensureDependencies():
            return
        with slicer.util.tryWithErrorDisplay(_("Cannot start the segmentation."), waitCursor=False):
            self._startRun()

    def _startRun(self) -> None:
        """Check the inputs, hand the voxels to the engine process, and start polling it."""
        p = self._parameterNode
        options = self._options()  # MR: liver only
        replaceSegments = self._confirmReplace(p.outputSegmentation, options.liverOnly)
        if replaceSegments is None:
            return
        volume = self.logic.volumeFromNode(p.inputVolume)
        self._watch(self.logic.startSegmentation(volume, options),
                    ("segment", p.inputVolume, p.outputSegmentation, replaceSegments, options))

    def _watch(self, run, pending: tuple) -> None:
        """Poll a started engine run; `pending` says what to do with its result (kind first)."""
        self._pending, self._run = pending, run
        self.ui.statusLabel.text = _("Starting...")
        self.ui.progressBar.value = 0
        self._setRunning(True)
        self._pollTimer.start()

    # Correct and re-run

    def _targetSegmentation(self):
        """The segmentation the correction buttons work on: the selected output, else the one last shown."""
        node = self._parameterNode.outputSegmentation if self._parameterNode else None
        node = node or self._shownSegmentation
        return node if node is not None and node.GetScene() is not None else None

    def _lesionPoint(self):
        """World RAS of the last point of the selected point list, or None."""
        pointNode = self.ui.pointSelector.currentNode()
        if pointNode is None or pointNode.GetNumberOfControlPoints() == 0:
            return None
        position = [0.0, 0.0, 0.0]
        pointNode.GetNthControlPointPositionWorld(pointNode.GetNumberOfControlPoints() - 1, position)
        return tuple(position)

    def onFindTumors(self) -> None:
        """Re-run the tumor stage inside the (edited) Liver segment, in the engine process."""
        if self._run is not None or not self.ensureDependencies():
            return
        volumeNode, segmentationNode = self._parameterNode.inputVolume, self._targetSegmentation()
        with slicer.util.tryWithErrorDisplay(_("Cannot find tumors."), waitCursor=False):
            run = self.logic.findTumorsRun(volumeNode, segmentationNode, self._options()).start()
            self._watch(run, ("tumors", volumeNode, segmentationNode))

    def onAddLesion(self) -> None:
        """Segment the lesion at the placed point, in the engine process."""
        if self._run is not None or not self.ensureDependencies():
            return
        volumeNode, segmentationNode, point = self._parameterNode.inputVolume, self._targetSegmentation(), self._lesionPoint()
        if point is None:
            self.ui.statusLabel.text = _("Place a point on the lesion first.")
            return
        with slicer.util.tryWithErrorDisplay(_("Cannot add the lesion."), waitCursor=False):
            run = self.logic.addLesionRun(volumeNode, segmentationNode, point, self._options()).start()
            self._watch(run, ("add", volumeNode, segmentationNode, point))

    def onRemoveLesion(self) -> None:
        """Remove the lesion under the placed point (quick: no engine)."""
        segmentationNode = self._targetSegmentation()
        if self._lesionPoint() is None:
            self.ui.statusLabel.text = _("Place a point on the lesion first.")
            return
        with slicer.util.tryWithErrorDisplay(_("Cannot remove the lesion."), waitCursor=True):
            lesionId = self.logic.removeLesionAt(segmentationNode, self._lesionPoint())
            self._refreshResult(segmentationNode, _("Removed lesion {id}.").format(id=lesionId))

    def onUndo(self) -> None:
        """Put back the segmentation as it was before the last Find tumors / Add / Remove lesion."""
        segmentationNode = self._targetSegmentation()
        if segmentationNode is not None and self.logic.undo(segmentationNode):
            self._refreshResult(segmentationNode, _("Undone."))

    def _confirmReplace(self, segmentationNode, liverOnly: bool) -> Optional[bool]:
        """False for a new/empty output, True if the user agrees to overwrite existing segments, None to stop."""
        from LiverTumorSegLib.errors import OutputExistsError

        try:
            self.logic.checkOutput(segmentationNode, replaceSegments=False, liverOnly=liverOnly)
            return False
        except OutputExistsError as exc:  # ask before destroying manual edits
            question = _("{message}\n\nReplace these segments? Manual edits in them will be lost.").format(message=exc)
            return True if slicer.util.confirmOkCancelDisplay(question, windowTitle=_("Replace segments")) else None

    def onCancelButton(self) -> None:
        """Kill the engine's processes (returns at once); Apply stays disabled until the polls see them gone."""
        if self._run is not None:
            self.ui.statusLabel.text = _("Cancelling...")
            self._run.cancel()

    def _cancelRun(self) -> None:
        """Cancel and forget any run without applying its result (scene closing, module unloading)."""
        if self._run is not None:
            self._run.cancel()  # kills the engine's process tree; the wait is for the operating system to end it
            self._run.wait(CANCEL_WAIT_S)
        self._pollTimer.stop()
        self._run, self._pending = None, None

    def onPollTimer(self) -> None:
        """Show the engine's progress; when it has ended, load and apply or report its outcome."""
        if self._run is None:
            self._pollTimer.stop()
            return
        state = self._run.state()
        self.ui.progressBar.value = int(round(100 * state.fraction))
        self.ui.statusLabel.text = state.message
        if not state.done:
            return
        self._pollTimer.stop()
        pending, cancelled = self._pending, self._run.cancelRequested
        self._run, self._pending = None, None
        self._setRunning(False)
        self._finishRun(state, pending, cancelled)

    def _finishRun(self, state, pending, cancelled: bool) -> None:
        """Add a finished result to the scene, or report cancellation / the error."""
        from LiverTumorSegLib.errors import CancelledError

        if cancelled or isinstance(state.error, CancelledError):  # a result that raced the cancel is dropped too
            self.ui.statusLabel.text = _("Cancelled; the scene was not changed.")
            return
        if state.error is not None:
            details = "".join(traceback.format_exception(type(state.error), state.error, state.error.__traceback__))
            logging.error("LiverTumorSeg failed:\n%s", details)
            message, more = self._errorTexts(state.error, details)
            # PythonQt shows detailedText=None as a "None" details box: pass it only when there is some.
            extra = {"detailedText": more} if more else {}
            slicer.util.errorDisplay(_("Segmentation failed: {message}").format(message=message), **extra)
            self.ui.statusLabel.text = _("Failed: {message}").format(message=message)
            return
        kind, volumeNode, segmentationNode = pending[:3]
        with slicer.util.tryWithErrorDisplay(_("Cannot add the result to the scene."), waitCursor=True):
            if kind == "tumors":
                self.logic.applyTumors(volumeNode, segmentationNode, state.result)
                self._refreshResult(segmentationNode, _("Tumors found again inside the edited liver."))
            elif kind == "add":
                lesionId = self.logic.applyAddedLesion(volumeNode, segmentationNode, state.result, pending[3])
                self._refreshResult(segmentationNode, _("Added lesion {id}.").format(id=lesionId))
            else:
                replaceSegments, options = pending[3:]
                segmentationNode = self.logic.applyResult(volumeNode, state.result, segmentationNode, replaceSegments,
                                                          options.liverOnly)
                self._showResult(volumeNode, segmentationNode, state.result)

    @staticmethod
    def _errorTexts(error, traceText: str) -> tuple:
        """(message, details or "") of a failed run: typed errors need no traceback; an engine crash shows its output."""
        from LiverTumorSegLib.errors import LiverTumorSegError

        if isinstance(error, EngineError):
            return error.message, error.output
        return str(error), "" if isinstance(error, LiverTumorSegError) else traceText

    # Results

    def _showResult(self, volumeNode, segmentationNode, result) -> None:
        """Show the segments in slice and 3D views, and the lesion table and summary in the panel."""
        segmentationNode.CreateClosedSurfaceRepresentation()
        slicer.util.setSliceViewerLayers(background=volumeNode, fit=True)
        self._shownSegmentation = segmentationNode
        self._showSummary(segmentationNode, result.summary())
        self.ui.correctCollapsibleButton.collapsed = False
        device, engine = result.summary()["device"].upper(), self.logic.engineLine(result)
        status = _("Done in {seconds:.1f} s on {device}.").format(
            seconds=result.summary()["seconds"], device=f"{device} ({engine})" if engine else device)
        modelSet = self.logic.modelSetLine(result)  # which model set ran and its accuracy, in one line
        self.ui.statusLabel.text = " ".join([status] + ([modelSet] if modelSet else []) + list(result.warnings))
        self._updateButtons()

    def _showSummary(self, segmentationNode, summary: dict) -> None:
        """Show a segmentation's lesion table and headline numbers (from the result or its stored summary)."""
        self.ui.lesionTableView.setMRMLTableNode(self.logic.lesionTableNode(segmentationNode))
        self.ui.liverVolumeLabel.text = _("{value:.1f} ml").format(value=float(summary["liver_volume_ml"]))
        self.ui.tumorVolumeLabel.text = _("{value:.2f} ml").format(value=float(summary["tumor_volume_ml"]))
        self.ui.tumorBurdenLabel.text = _("{value:.2f} %").format(value=float(summary["tumor_burden_percent"]))
        self.ui.lesionCountLabel.text = str(summary["lesions"])
        self.ui.resultsCollapsibleButton.collapsed = False

    def _refreshResult(self, segmentationNode, message: str) -> None:
        """After a correction: show the segmentation's updated table and summary, and say what was done."""
        self._shownSegmentation = segmentationNode
        self._showSummary(segmentationNode, self.logic.resultSummary(segmentationNode))
        self.ui.statusLabel.text = message
        self._updateButtons()

    def _clearResults(self) -> None:
        """Forget the shown result (its nodes are going away with the scene)."""
        self._shownSegmentation = None
        self.ui.lesionTableView.setMRMLTableNode(None)
        for label in (self.ui.liverVolumeLabel, self.ui.tumorVolumeLabel, self.ui.tumorBurdenLabel, self.ui.lesionCountLabel):
            label.text = ""
        self.ui.statusLabel.text = ""

    def onLesionClicked(self, index) -> None:
        """Jump the slice views to the centroid of the clicked lesion (read from the table node, not the cell)."""
        segmentationNode = self._shownSegmentation
        if segmentationNode is None or segmentationNode.GetScene() is None or not index.isValid():
            return
        with slicer.util.tryWithErrorDisplay(_("Cannot jump to the lesion."), waitCursor=False):
            view = self.ui.lesionTableView
            tableRow = slicercompat.tableRowOfIndex(view, index)
            tableNode = self.logic.lesionTableNode(segmentationNode)
            lesionId = self.logic.lesionIdAtRow(tableNode, tableRow)
            position = self.logic.lesionCentroid(segmentationNode, lesionId)  # through the segmentation's transform
            slicer.modules.markups.logic().JumpSlicesToLocation(*position, True)


#
# LiverTumorSegLogic
#


class LiverTumorSegLogic(ScriptedLoadableModuleLogic, CoreLogic):
    """The Qt-free LiverTumorSegLogic plus Slicer's parameter node; see LiverTumorSegLogic.logic for the API."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)  # cooperative: also initialises CoreLogic

    def getParameterNode(self) -> LiverTumorSegParameterNode:
        """The module's parameter node, wrapped for typed access."""
        return LiverTumorSegParameterNode(super().getParameterNode())


#
# LiverTumorSegTest
#


class LiverTumorSegTest(ScriptedLoadableModuleTest):
    """Self-test on the bundled demo CT (Reload & Test); needs the runtime packages installed."""

    def setUp(self):
        """Start from an empty scene."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run all tests; those needing the engine are skipped (with the reason) before the first-use install."""
        self.setUp()
        self.test_WindowPreset()  # needs no install
        missing = dependencies.missingModules()
        if missing:
            requirements = dependencies.pipRequirements(missing, dependencies.hasNvidiaGpu())
            reason = f"LiverTumorSeg engine self-tests skipped: needs {', '.join(requirements)} (open the module once to install them)"
            logging.warning(reason)
            self.delayDisplay(reason)
            return
        self.setUp()
        self.test_SegmentDemoCt()
        self.setUp()
        self.test_RejectsSingleSlice()
        self.setUp()
        self.test_CorrectAndRerun()

    def _demoVolume(self):
        """The bundled demo CT, loaded as a volume node."""
        from LiverTumorSegLib.data import DEMO_CT

        return slicer.util.loadVolume(str(DEMO_CT))

    def test_SegmentDemoCt(self):
        """Apply on the demo CT gives Liver / Liver tumor segments on the CT grid and a lesion table."""
        self.delayDisplay("Segmenting the demo CT")
        volumeNode = self._demoVolume()
        logic = LiverTumorSegLogic()
        steps = []
        segmentationNode = logic.process(volumeNode, progress=lambda f, m: steps.append(f))
        segmentation = segmentationNode.GetSegmentation()
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        self.assertEqual(names, ["Liver", "Liver tumor"])
        liverId = segmentation.GetSegmentIdBySegmentName("Liver")
        liver = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, liverId, volumeNode)
        self.assertEqual(liver.shape, slicer.util.arrayFromVolume(volumeNode).shape)
        self.assertGreater(int(liver.sum()), 1000)
        self.assertTrue(slicercompat.segmentTerminology(segmentation.GetSegment(liverId)))  # 5.8 has no HasTerminology
        self.assertIsNotNone(logic.lesionTableNode(segmentationNode))
        self.assertGreater(float(logic.resultSummary(segmentationNode)["liver_volume_ml"]), 100.0)
        self.assertEqual(steps[-1], 1.0)
        self.delayDisplay("Test passed")

    def test_CorrectAndRerun(self):
        """Find tumors in the liver of a liver-only run replaces Liver tumor; Undo takes it back."""
        self.delayDisplay("Find tumors in the segmented liver, then undo")
        volumeNode = self._demoVolume()
        logic = LiverTumorSegLogic()
        segmentationNode = logic.process(volumeNode, liverOnly=True)
        segmentation = segmentationNode.GetSegmentation()
        self.assertFalse(segmentation.GetSegmentIdBySegmentName("Liver tumor"))
        logic.findTumors(volumeNode, segmentationNode)
        self.assertTrue(segmentation.GetSegmentIdBySegmentName("Liver tumor"))
        self.assertTrue(logic.undo(segmentationNode))
        self.assertFalse(segmentation.GetSegmentIdBySegmentName("Liver tumor"))
        self.delayDisplay("Test passed")

    def test_WindowPreset(self):
        """The liver preset sets the library's liver window on the display node (works before the install)."""
        import numpy as np

        volumeNode = slicer.util.addVolumeFromArray(np.zeros((8, 16, 16), np.int16))
        logic = LiverTumorSegLogic()
        logic.applyWindowPreset(volumeNode, "liver")
        displayNode = volumeNode.GetDisplayNode()
        liver = logic.windowPreset("liver")
        self.assertAlmostEqual(displayNode.GetWindow(), liver.width)
        self.assertAlmostEqual(displayNode.GetLevel(), liver.level)
        self.delayDisplay("Test passed")

    def test_RejectsSingleSlice(self):
        """A single 2-D slice is refused with a clear error and the scene is left unchanged."""
        import numpy as np
        from LiverTumorSegLib.errors import InvalidInputError

        volumeNode = slicer.util.addVolumeFromArray(np.zeros((1, 64, 64), np.int16))
        before = slicer.mrmlScene.GetNumberOfNodes()
        with self.assertRaises(InvalidInputError):
            LiverTumorSegLogic().process(volumeNode)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), before)
        self.delayDisplay("Test passed")
