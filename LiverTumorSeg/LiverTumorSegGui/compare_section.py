"""The "Compare with prior" panel section: pick two CTs (and their segmentations), compare, show both, jump to a lesion.

GUI only: the work is `LiverTumorSegLogic.compare.compareNodes`; errors become dialogs here.
"""
from typing import Callable, Optional

import slicer
from slicer.i18n import tr as _

from LiverTumorSegLogic import slicercompat


class CompareSection:
    """Wires the section's widgets (`ui.compare*`) to the comparison logic."""

    def __init__(self, ui, ensureDependencies: Callable[[], bool]) -> None:
        """Connect the Compare button and the change table."""
        self.ui = ui
        self.ensureDependencies = ensureDependencies
        self.result = None
        ui.compareButton.connect("clicked(bool)", self.onCompare)
        ui.compareTableView.connect("clicked(QModelIndex)", self.onTrackClicked)

    def onCompare(self) -> None:
        """Compare the picked time points; show the registered follow-up over the baseline and the change table."""
        from LiverTumorSegLogic.compare import compareNodes

        ui = self.ui
        baseline, followup = ui.compareBaselineVolumeSelector.currentNode(), ui.compareFollowupVolumeSelector.currentNode()
        if baseline is None or followup is None or not self.ensureDependencies():
            ui.compareStatusLabel.text = _("Pick a baseline and a follow-up CT.") if baseline is None or followup is None else ""
            return
        with slicer.util.tryWithErrorDisplay(_("Comparison failed."), waitCursor=True):
            self.result = compareNodes(baseline, followup, ui.compareBaselineSegmentationSelector.currentNode(),
                                       ui.compareFollowupSegmentationSelector.currentNode())
            ui.compareTableView.setMRMLTableNode(self.result.table)
            slicer.util.setSliceViewerLayers(background=baseline, foreground=self.result.registeredFollowup,
                                             foregroundOpacity=0.5, label=self.result.baselineTracks, fit=True)
            ui.compareStatusLabel.text = self.summaryLine(self.result.summary)
            return
        ui.compareStatusLabel.text = ""

    @staticmethod
    def summaryLine(summary: dict) -> str:
        """Counts per status, tumor volumes, the RECIST-style aid and the alignment, in one line."""
        counts = ", ".join(f"{n} {status}" for status, n in summary["status_counts"].items() if n) or _("no lesions")
        reg, aid = summary["registration"], summary["recist_liver"]
        return _("{counts}. Tumor {before} -> {after} ml. RECIST-style aid (not a read): {category}. "
                 "Liver Dice after registration {dice:.2f}.").format(
            counts=counts, before=summary["baseline_tumor_ml"], after=summary["followup_tumor_ml"],
            category=aid["category"], dice=reg["liver_dice"]) + "".join(" " + w for w in summary["warnings"])

    def onTrackClicked(self, index) -> None:
        """Jump the slice views to the clicked lesion: baseline and registered follow-up show it at one position."""
        from LiverTumorSegLogic.compare import trackIdAtRow, trackPosition

        if self.result is None or self.result.table.GetScene() is None or not index.isValid():
            return
        with slicer.util.tryWithErrorDisplay(_("Cannot jump to the lesion."), waitCursor=False):
            trackId = trackIdAtRow(self.result.table, slicercompat.tableRowOfIndex(self.ui.compareTableView, index))
            position: Optional[tuple] = trackPosition(self.result, trackId, "baseline") or trackPosition(
                self.result, trackId, "registered")
            if position is not None:
                slicer.modules.markups.logic().JumpSlicesToLocation(*position, True)
