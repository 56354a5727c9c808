"""Static checks of the Slicer module: the widget code against its .ui file, the parameter node, and the
Qt-free boundary of the logic package. LiverTumorSeg.py itself needs Slicer's Qt, so it is parsed, not run.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[2] / "LiverTumorSeg"
MODULE_SOURCE = MODULE_DIR / "LiverTumorSeg.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "LiverTumorSeg.ui"


def _module_tree() -> ast.Module:
    """Syntax tree of LiverTumorSeg.py."""
    return ast.parse(MODULE_SOURCE.read_text(), filename=str(MODULE_SOURCE))


def _ui_widgets() -> dict[str, ET.Element]:
    """Every widget of the .ui file by object name."""
    return {w.get("name"): w for w in ET.parse(UI_FILE).getroot().iter("widget")}


def _ui_names_used_by_code() -> set[str]:
    """Attribute names X of every `self.ui.X` in LiverTumorSeg.py."""
    used = set()
    for node in ast.walk(_module_tree()):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui"
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"):
            used.add(node.attr)
    return used


def _parameter_fields() -> dict[str, ast.AnnAssign]:
    """Annotated fields of the @parameterNodeWrapper class, by name."""
    cls = next(n for n in _module_tree().body if isinstance(n, ast.ClassDef) and n.name == "LiverTumorSegParameterNode")
    return {f.target.id: f for f in cls.body if isinstance(f, ast.AnnAssign)}


def _slicer_parameter_names() -> dict[str, str]:
    """SlicerParameterName dynamic property of .ui widgets: parameter name -> widget name."""
    out = {}
    for name, widget in _ui_widgets().items():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                out[prop.findtext("string")] = name
    return out


def test_every_widget_the_code_uses_exists_in_the_ui_file():
    used, defined = _ui_names_used_by_code(), set(_ui_widgets())
    assert used, "found no self.ui.<widget> uses: the parser lost track of the widget code"
    assert used <= defined, f"used by LiverTumorSeg.py but missing in the .ui: {sorted(used - defined)}"


def test_the_panel_has_the_controls_the_issue_asks_for():
    widgets = _ui_widgets()
    expected = {
        "inputVolumeSelector": "qMRMLNodeComboBox", "outputSegmentationSelector": "qMRMLNodeComboBox",
        "liverWindowButton": "QPushButton", "abdomenWindowButton": "QPushButton", "deviceComboBox": "QComboBox",
        "fastCheckBox": "QCheckBox", "liverOnlyCheckBox": "QCheckBox", "minLesionSpinBox": "QDoubleSpinBox",
        "advancedCollapsibleButton": "ctkCollapsibleButton", "applyButton": "QPushButton",
        "cancelButton": "QPushButton", "progressBar": "QProgressBar", "statusLabel": "QLabel",
        "lesionTableView": "qMRMLTableView", "liverVolumeLabel": "QLabel", "tumorBurdenLabel": "QLabel",
    }
    assert {name: widgets[name].get("class") for name in expected if name in widgets} == expected
    advanced = {p.get("name"): p for p in widgets["advancedCollapsibleButton"].findall("property")}
    assert advanced["collapsed"].findtext("bool") == "true"
    output = {p.get("name"): p for p in widgets["outputSegmentationSelector"].findall("property")}
    assert output["noneEnabled"].findtext("bool") == "true"
    assert output["noneDisplay"].findtext("string") == "Create new segmentation"


def test_parameter_node_fields_and_ui_bindings_match():
    assert set(_slicer_parameter_names()) == set(_parameter_fields())


def test_node_selectors_receive_the_scene():
    connections = ET.parse(UI_FILE).getroot().find("connections")
    receivers = {c.findtext("receiver") for c in connections if c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    assert {"inputVolumeSelector", "outputSegmentationSelector", "lesionTableView"} <= receivers


def test_minimum_lesion_default_is_the_library_default():
    from LiverTumorSegLib.config import PostprocessConfig

    default = ast.literal_eval(_parameter_fields()["minLesionMm3"].value)
    assert default == PostprocessConfig().min_lesion_mm3


def test_device_choices_are_the_library_devices():
    from LiverTumorSegLib.runtime import resolve_device

    choice = next(n for n in ast.walk(_parameter_fields()["device"].annotation)
                  if isinstance(n, ast.Call) and ast.unparse(n.func) == "Choice")
    choices = ast.literal_eval(choice.args[0])
    assert choices == ["auto", "cpu", "cuda"]
    assert resolve_device("auto") in choices and resolve_device("cpu") == "cpu"


def test_module_declares_the_template_classes():
    classes = {n.name: n for n in _module_tree().body if isinstance(n, ast.ClassDef)}
    bases = {name: {ast.unparse(b) for b in cls.bases} for name, cls in classes.items()}
    assert "ScriptedLoadableModule" in bases["LiverTumorSeg"]
    assert "ScriptedLoadableModuleWidget" in bases["LiverTumorSegWidget"]
    assert {"ScriptedLoadableModuleLogic", "CoreLogic"} <= bases["LiverTumorSegLogic"]
    assert "ScriptedLoadableModuleTest" in bases["LiverTumorSegTest"]
    tests = [f.name for f in classes["LiverTumorSegTest"].body if isinstance(f, ast.FunctionDef) and f.name.startswith("test_")]
    run = ast.unparse(next(f for f in classes["LiverTumorSegTest"].body if getattr(f, "name", "") == "runTest"))
    assert tests and all(f"self.{t}()" in run for t in tests), "runTest must run every self-test"


def test_logic_package_imports_without_qt_or_the_engine():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import LiverTumorSegLogic; "
            "bad = [m for m in ('qt', 'ctk', 'slicer.ScriptedLoadableModule', 'slicer.parameterNodeWrapper', "
            "'LiverTumorSegLib', 'onnxruntime', 'cc3d') if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code, str(MODULE_DIR)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at load time: {out.stdout.strip()}"


def test_module_code_has_no_segmentation_math():
    sources = [MODULE_SOURCE, *sorted((MODULE_DIR / "LiverTumorSegLogic").glob("*.py"))]
    for path in sources:
        imported = {a.name.split(".")[0] for n in ast.walk(ast.parse(path.read_text()))
                    if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names} | {
            (n.module or "").split(".")[0] for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)}
        assert not imported & {"scipy", "cc3d", "onnxruntime", "torch"}, f"{path.name} imports {imported}"
