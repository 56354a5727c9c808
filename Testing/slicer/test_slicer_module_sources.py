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
        "modelSetComboBox": "QComboBox", "liverOnlyCheckBox": "QCheckBox", "minLesionSpinBox": "QDoubleSpinBox",
        "advancedCollapsibleButton": "ctkCollapsibleButton", "applyButton": "QPushButton",
        "cancelButton": "QPushButton", "progressBar": "QProgressBar", "statusLabel": "QLabel",
        "lesionTableView": "qMRMLTableView", "liverVolumeLabel": "QLabel", "tumorBurdenLabel": "QLabel",
        "findTumorsButton": "QPushButton", "addLesionButton": "QPushButton", "removeLesionButton": "QPushButton",
        "undoButton": "QPushButton", "pointSelector": "qMRMLNodeComboBox", "pointPlaceWidget": "qSlicerMarkupsPlaceWidget",
    }
    assert "fastCheckBox" not in widgets, "the fast model set is no longer shipped: the panel lists the sets instead"
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
        # the engine process's entry point asks ONNX Runtime which devices really work (no inference)
        allowed = {"onnxruntime"} if path.name == "engine_worker.py" else set()
        assert not imported & ({"scipy", "cc3d", "onnxruntime", "torch"} - allowed), f"{path.name} imports {imported}"


def _calls(path: Path, name: str) -> list[ast.Call]:
    """Every call of `<anything>.name(...)` in a source file."""
    return [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute) and n.func.attr == name]


def test_error_dialogs_get_detailed_text_only_when_there_is_some():
    calls = _calls(MODULE_SOURCE, "errorDisplay")
    assert calls, "the widget shows no error dialog any more: update this test"
    for call in calls:  # PythonQt shows detailedText=None as a details box reading "None"
        assert "detailedText" not in {k.arg for k in call.keywords}, ast.unparse(call)


def test_the_widget_connects_its_gui_with_a_tag_it_gets_on_slicer_5_8():
    assert not _calls(MODULE_SOURCE, "connectGui"), "connectGui returns no tag on Slicer 5.8: use connectParametersToGui"
    assert _calls(MODULE_SOURCE, "connectParametersToGui") and _calls(MODULE_SOURCE, "disconnectGui")


def _runtime_unions(path: Path) -> list[str]:
    """`X | Y` of names evaluated at import time on Python 3.9: in annotations without the __future__ import
    (parameterNodeWrapper and dataclasses evaluate those) and in module- or class-level assignments (type aliases)."""
    tree = ast.parse(path.read_text())
    postponed = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
                    for n in tree.body)

    def unions(expr) -> list[str]:
        ors = [n for n in ast.walk(expr) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)]
        inner = {id(side) for n in ors for side in (n.left, n.right)}
        return [ast.unparse(n) for n in ors if id(n) not in inner
                and all(isinstance(side, (ast.Name, ast.Attribute, ast.Subscript)) or (isinstance(side, ast.Constant) and side.value is None)
                        or isinstance(side, ast.BinOp) for side in (n.left, n.right))
                and any(_looks_like_type(side) for side in (n.left, n.right))]

    found = []
    for scope in [tree] + [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
        for stmt in scope.body:
            if isinstance(stmt, ast.Assign):
                found += unions(stmt.value)
            elif isinstance(stmt, ast.AnnAssign):
                found += unions(stmt.value) if stmt.value else []
                found += [] if postponed else unions(stmt.annotation)
    if not postponed:
        for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for arg in fn.args.args + fn.args.kwonlyargs:
                found += unions(arg.annotation) if arg.annotation else []
            found += unions(fn.returns) if fn.returns else []
    return found


def _looks_like_type(node) -> bool:
    """A capitalised name, a builtin type name, None, or sitk.Image-like attribute."""
    if isinstance(node, ast.Constant):
        return node.value is None
    if isinstance(node, ast.BinOp):
        return _looks_like_type(node.left) or _looks_like_type(node.right)
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "") or ast.unparse(node).split("[")[0]
    return name[:1].isupper() or name in {"str", "int", "float", "bool", "bytes", "list", "dict", "tuple", "set"}


def test_nothing_evaluates_an_x_or_y_type_union_at_import_on_python_3_9():
    library = MODULE_DIR.parent / "LiverTumorSegLib"
    files = sorted(library.rglob("*.py")) + [MODULE_SOURCE] + sorted((MODULE_DIR / "LiverTumorSegLogic").glob("*.py"))
    found = {str(f.relative_to(MODULE_DIR.parent)): u for f in files if (u := _runtime_unions(f))}
    assert not found, f"TypeError on Python 3.9 (Slicer 5.8); use typing.Union/Optional: {found}"


def test_the_union_check_catches_the_alias_that_broke_slicer_5_8(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from __future__ import annotations\nimport SimpleITK as sitk\nImageLike = sitk.Image | Volume | str\n"
                      "mask = a | b\ndef f(x: int | None) -> str | None: ...\n")
    assert _runtime_unions(sample) == ["sitk.Image | Volume | str"]


def test_window_presets_and_error_types_work_before_the_first_use_install():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); sys.modules['cc3d'] = sys.modules['onnxruntime'] = None\n"
            "import LiverTumorSegLogic.presets as p\n"
            "assert p.windowPresets()['liver'].width > 0 and 'LiverTumorSegLib' not in sys.modules\n"
            "early = p.errors().InvalidInputError\n"
            "del sys.modules['cc3d'], sys.modules['onnxruntime']\n"
            "import LiverTumorSegLib.errors\n"
            "assert LiverTumorSegLib.errors.InvalidInputError is early, 'two InvalidInputError classes'\n"
            "assert LiverTumorSegLib.PRESETS is p.windowPresets()\n")
    out = subprocess.run([sys.executable, "-c", code, str(MODULE_DIR)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
