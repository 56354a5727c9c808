"""Architecture rules: the library stands alone (no Slicer, Qt, VTK, Training) and is fully importable."""
import ast
import importlib
import pkgutil
from pathlib import Path

import LiverTumorSegLib

FORBIDDEN = {"slicer", "qt", "ctk", "vtk", "Training", "torch"}
LIB = Path(LiverTumorSegLib.__file__).parent


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_library_never_imports_slicer_qt_vtk_training_or_torch():
    offenders = {p.name: _imported_roots(p) & FORBIDDEN for p in LIB.rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_every_library_module_imports_cleanly():
    for mod in pkgutil.walk_packages([str(LIB)], prefix="LiverTumorSegLib."):
        importlib.import_module(mod.name)
