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

DEVICE_LABELS = {"auto": "Auto", "cpu": "CPU", "cuda": "GPU (CUDA)"}
POLL_INTERVAL_MS = 100


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
            "volume, longest axial diameter and centroid; click a row to jump to it. For batch processing "
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
    fast: bool = False
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
        """Name the device choices, marking those ONNX Runtime cannot use here as not available."""
        available = None
        if not dependencies.missingModules():
            available = self.logic.availableDevices()
        combo = self.ui.deviceComboBox
        for index, device in enumerate(DEVICE_LABELS):
            usable = available is None or device == "auto" or device in available
            combo.setItemText(index, DEVICE_LABELS[device] + ("" if usable else _(" (not available)")))
        if available is None:
            combo.toolTip = _("Devices are checked after the first-use installation of ONNX Runtime.")
            return
        combo.toolTip = _("Available here: {devices}").format(devices=", ".join(DEVICE_LABELS[d] for d in available))
        reason = self.logic.cudaUnavailableReason()
        if reason:
            combo.toolTip += " " + _("(no GPU: {reason})").format(reason=reason)

    def _updateButtons(self, caller=None, event=None) -> None:
        """Enable Apply and the window presets only when an input volume is selected."""
        hasInput = bool(self._parameterNode and self._parameterNode.inputVolume)
        busy = self._run is not None or self._installing
        self.ui.applyButton.enabled = hasInput and not busy
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
        self._updateButtons()

    # Dependencies

    def ensureDependencies(self) -> bool:
        """True when the runtime packages are importable; otherwise ask once and install them."""
        missing = dependencies.missingModules()
        if not missing:
            return True
        if self._installing:  # pip_install pumps the event loop: a second click must not start a second install
            return False
        requirements = dependencies.pipRequirements(missing, dependencies.hasNvidiaGpu())
        if self._installDeclined:
            self.ui.statusLabel.text = _("Needs {packages}; reopen Slicer to be asked again.").format(
                packages=", ".join(requirements))
            return False
        question = _("LiverTumorSeg needs these Python packages, which are not installed yet:\n\n{packages}\n\n"
                     "Install them now? This downloads them once (up to a few hundred MB) and may take a few minutes.").format(
            packages="\n".join(requirements))
        if not slicer.util.confirmOkCancelDisplay(question, windowTitle=_("Install dependencies")):
            self._installDeclined = True
            return False
        self._installing = True
        self._updateButtons()
        self.ui.statusLabel.text = _("Installing {packages}...").format(packages=", ".join(requirements))
        try:
            with slicer.util.tryWithErrorDisplay(_("Failed to install {packages}.").format(packages=", ".join(requirements)),
                                                 waitCursor=True):
                slicer.util.pip_install(requirements)
        finally:
            self._installing = False
            self._updateButtons()
            self.ui.statusLabel.text = ""
        if dependencies.missingModules():
            return False
        self._labelDevices()
        return True

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
        options = self.logic.runOptions(p.inputVolume, p.device, p.fast, p.liverOnly, p.minLesionMm3,
                                        None if p.modality == "auto" else p.modality)  # MR: liver only
        replaceSegments = self._confirmReplace(p.outputSegmentation, options.liverOnly)
        if replaceSegments is None:
            return
        volume = self.logic.volumeFromNode(p.inputVolume)
        self._pending = (p.inputVolume, p.outputSegmentation, replaceSegments, options)
        self._run = self.logic.startSegmentation(volume, options)
        self.ui.statusLabel.text = _("Starting...")
        self.ui.progressBar.value = 0
        self._setRunning(True)
        self._pollTimer.start()

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
        """Stop the engine process now; the next poll reports the cancellation."""
        if self._run is not None:
            self.ui.statusLabel.text = _("Cancelling...")
            self._run.cancel()

    def _cancelRun(self) -> None:
        """Cancel and forget any run without applying its result (scene closing, module unloading)."""
        if self._run is not None:
            self._run.cancel()
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
        volumeNode, segmentationNode, replaceSegments, options = pending
        with slicer.util.tryWithErrorDisplay(_("Cannot add the segmentation to the scene."), waitCursor=True):
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
        self.ui.lesionTableView.setMRMLTableNode(self.logic.lesionTableNode(segmentationNode))
        summary = result.summary()
        self.ui.liverVolumeLabel.text = _("{value:.1f} ml").format(value=summary["liver_volume_ml"])
        self.ui.tumorVolumeLabel.text = _("{value:.2f} ml").format(value=summary["tumor_volume_ml"])
        self.ui.tumorBurdenLabel.text = _("{value:.2f} %").format(value=summary["tumor_burden_percent"])
        self.ui.lesionCountLabel.text = str(summary["lesions"])
        self.ui.resultsCollapsibleButton.collapsed = False
        status = _("Done in {seconds:.1f} s on {device}.").format(seconds=summary["seconds"], device=summary["device"].upper())
        modelSet = self.logic.modelSetLine(result)  # which model set ran and its accuracy, in one line
        self.ui.statusLabel.text = " ".join([status] + ([modelSet] if modelSet else []) + list(result.warnings))

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
            position = self.logic.lesionCentroid(segmentationNode, lesionId, self._parameterNode.inputVolume)
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
