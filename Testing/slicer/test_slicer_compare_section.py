"""Static checks of the "Compare with prior" panel section (it needs Slicer's Qt, so it is parsed, not run)."""
from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[2] / "LiverTumorSeg"
SECTION = MODULE_DIR / "LiverTumorSegGui" / "compare_section.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "LiverTumorSeg.ui"


def _widgets() -> dict[str, ET.Element]:
    """Every widget of the .ui file by object name."""
    return {w.get("name"): w for w in ET.parse(UI_FILE).getroot().iter("widget")}


def test_every_widget_the_section_uses_is_in_its_collapsed_section_of_the_ui():
    used = {n.attr for n in ast.walk(ast.parse(SECTION.read_text()))
            if isinstance(n, ast.Attribute) and ast.unparse(n.value) in ("ui", "self.ui")}
    section = _widgets()["compareCollapsibleButton"]
    inside = {w.get("name") for w in section.iter("widget")}
    assert used and used <= inside, sorted(used - inside)
    collapsed = {p.get("name"): p.findtext("bool") for p in section.findall("property")}
    assert collapsed["collapsed"] == "true"


def test_the_section_selectors_and_table_receive_the_scene():
    connections = ET.parse(UI_FILE).getroot().find("connections")
    receivers = {c.findtext("receiver") for c in connections if c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    widgets = _widgets()
    section = {w.get("name") for w in widgets["compareCollapsibleButton"].iter("widget")
               if w.get("class") in ("qMRMLNodeComboBox", "qMRMLTableView")}
    assert len(section) == 5 and section <= receivers


def test_the_widget_builds_the_section():
    source = (MODULE_DIR / "LiverTumorSeg.py").read_text()
    assert "CompareSection(self.ui, self.ensureDependencies)" in source
