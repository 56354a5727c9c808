"""Render panel.png: the module panel from the real LiverTumorSeg.ui, as it looks after Apply on the demo CT.

Not a screenshot of 3D Slicer: Qt (PyQt5, offscreen) builds the .ui file itself, with plain Qt
stand-ins for the five Slicer/CTK classes (ctkCollapsibleButton -> QGroupBox whose contents are hidden
when collapsed, qMRMLNodeComboBox -> QComboBox, qMRMLTableView -> QTableWidget, qMRMLWidget -> QWidget,
qSlicerMarkupsPlaceWidget -> QToolButton).
The values are those the widget writes after segmenting the built-in demo CT with the library; the
lesion table headers are the module's column titles and units. Run from the repository root with a
Python that has PyQt5 (`pip install -e ".[docs]"`) and the library:

    QT_QPA_PLATFORM=offscreen python LiverTumorSeg/Resources/Screenshots/render_panel.py
"""
from __future__ import annotations

import io
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from PyQt5 import QtWidgets, uic

HERE = Path(__file__).resolve().parent
MODULE_DIR = HERE.parents[1]
UI_FILE = MODULE_DIR / "Resources" / "UI" / "LiverTumorSeg.ui"
OUT = HERE / "panel.png"
STAND_INS = {"ctkCollapsibleButton": "QGroupBox", "qMRMLNodeComboBox": "QComboBox",
             "qMRMLTableView": "QTableWidget", "qMRMLWidget": "QWidget", "qSlicerMarkupsPlaceWidget": "QToolButton"}
SHOWN_AFTER_A_RUN = {"resultsCollapsibleButton", "correctCollapsibleButton"}  # the widget unfolds them after Apply
KEPT = {"text", "toolTip", "enabled", "geometry", "minimumSize", "wordWrap"}  # properties the stand-ins take


def plain_qt_ui() -> tuple[str, set[str]]:
    """The .ui XML with stand-in classes (and their Slicer-only properties dropped); names of collapsed sections."""
    root = ET.parse(UI_FILE).getroot()
    collapsed = set()
    for widget in root.iter("widget"):
        original = widget.get("class")
        if original not in STAND_INS:
            continue
        widget.set("class", STAND_INS[original])
        for prop in list(widget.findall("property")):
            if prop.get("name") == "collapsed" and prop.findtext("bool") == "true":
                collapsed.add(widget.get("name"))
            if prop.get("name") not in KEPT or prop.get("stdset") == "0":
                widget.remove(prop)
            elif prop.get("name") == "text" and original == "ctkCollapsibleButton":
                prop.set("name", "title")
    for section in ("customwidgets", "connections"):
        for node in root.findall(section):
            root.remove(node)
    return ET.tostring(root, encoding="unicode"), collapsed


def demo_values() -> dict:
    """What the widget shows after segmenting the demo CT: summary numbers and lesion table headers."""
    sys.path.insert(0, str(MODULE_DIR.parent))
    import SimpleITK as sitk
    from LiverTumorSegLib import segment
    from LiverTumorSegLib.data import DEMO_CT

    sys.path.insert(0, str(MODULE_DIR))
    from LiverTumorSegLogic.nodes import COLUMN_UNITS, columnTitle, lesionColumnNames

    result = segment(sitk.ReadImage(str(DEMO_CT)), device="cpu")
    headers = []
    for name in lesionColumnNames():
        unit = next((u for suffix, u in COLUMN_UNITS.items() if name.endswith(suffix)), "")
        headers.append(columnTitle(name) + (f" [{unit}]" if unit else ""))  # as qMRMLTableModel writes them
    from LiverTumorSegLib.config import models_dir
    from LiverTumorSegLib.model_sets import list_model_sets

    sets = [s.name for s in list_model_sets(models_dir())]
    return {"summary": result.summary(), "rows": [lesion.row() for lesion in result.lesions], "headers": headers,
            "model_sets": sets}


def fill(panel, values: dict, collapsed: set[str]) -> None:
    """Put the demo run's values into the panel, as LiverTumorSeg.py's widget does after Apply."""
    find = lambda cls, name: panel.findChild(cls, name)  # noqa: E731
    find(QtWidgets.QComboBox, "inputVolumeSelector").addItem("demo_ct")
    find(QtWidgets.QComboBox, "outputSegmentationSelector").addItem("Create new segmentation")
    device = find(QtWidgets.QComboBox, "deviceComboBox")
    if device.count() == 0:
        device.addItems(["Auto", "CPU", "GPU (CUDA)"])
    device.setItemText(2, "GPU (CUDA) (not available)")
    modelSets = find(QtWidgets.QComboBox, "modelSetComboBox")
    modelSets.addItems(["Default"] + values["model_sets"])
    find(QtWidgets.QComboBox, "pointSelector").addItem("Lesion point")
    find(QtWidgets.QToolButton, "pointPlaceWidget").setText("Place")
    summary = values["summary"]
    find(QtWidgets.QLabel, "liverVolumeLabel").setText(f"{summary['liver_volume_ml']:.1f} ml")
    find(QtWidgets.QLabel, "tumorVolumeLabel").setText(f"{summary['tumor_volume_ml']:.2f} ml")
    find(QtWidgets.QLabel, "tumorBurdenLabel").setText(f"{summary['tumor_burden_percent']:.2f} %")
    find(QtWidgets.QLabel, "lesionCountLabel").setText(str(summary["lesions"]))
    find(QtWidgets.QLabel, "statusLabel").setText(f"Done in {summary['seconds']:.1f} s on {summary['device'].upper()}.")
    find(QtWidgets.QProgressBar, "progressBar").setVisible(False)
    find(QtWidgets.QPushButton, "cancelButton").setEnabled(False)
    find(QtWidgets.QPushButton, "applyButton").setEnabled(True)  # an input CT is selected
    table = find(QtWidgets.QTableWidget, "lesionTableView")
    table.setColumnCount(len(values["headers"]))
    table.setHorizontalHeaderLabels(values["headers"])
    table.setRowCount(len(values["rows"]))
    for r, row in enumerate(values["rows"]):
        for c, value in enumerate(row.values()):
            table.setItem(r, c, QtWidgets.QTableWidgetItem(str(value)))
    table.resizeColumnsToContents()
    for box in panel.findChildren(QtWidgets.QGroupBox):
        folded = box.objectName() in collapsed and box.objectName() not in SHOWN_AFTER_A_RUN
        box.setTitle(("▸ " if folded else "▾ ") + box.title())
        for child in box.findChildren(QtWidgets.QWidget):
            child.setVisible(not folded and child.isVisibleTo(box))
        if folded:  # a collapsed ctkCollapsibleButton is just its header
            box.setFlat(True)
            box.setMaximumHeight(box.fontMetrics().height() + 8)


def main() -> int:
    """Build, fill and save the panel."""
    app = QtWidgets.QApplication(sys.argv)
    xml, collapsed = plain_qt_ui()
    panel = uic.loadUi(io.StringIO(xml))
    fill(panel, demo_values(), collapsed)
    panel.resize(430, panel.sizeHint().height() + 40)
    panel.show()
    app.processEvents()
    if not panel.grab().save(str(OUT)):
        raise SystemExit(f"cannot write {OUT}")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
