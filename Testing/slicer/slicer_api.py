"""Which Slicer APIs the module uses, and (run as a script) which of them exist in given Slicer releases.

`used_names()` reads the module's sources: slicer.util functions, slicer.* names, VTK/MRML methods
(CamelCase calls), widget methods and the .ui classes. Testing/slicer/slicer_api.txt lists the names
found in Slicer's own sources at every supported tag; test_slicer_api.py requires every used name
to be listed, so a call that a supported Slicer lacks fails CI without a Slicer. Refresh the list
(needs a clone of github.com/Slicer/Slicer with its tags) with:

    python Testing/slicer/slicer_api.py /path/to/Slicer.git v5.8.0 v5.8.1 v5.10.0

A name counts as present at a tag when Slicer's C++/Python sources there declare or call it (a call
in Slicer's own code is the evidence for VTK, Qt and CTK methods), declare it as a class or enum value,
define it in Base/Python/slicer/util.py (slicer.util.*), or use it as a class in a .ui file.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "LiverTumorSeg"
LIST_FILE = Path(__file__).with_name("slicer_api.txt")
#: Receivers that are Python modules, not Slicer objects.
PYTHON_MODULES = {"os", "sys", "json", "signal", "subprocess", "threading", "shutil", "tempfile", "time", "np",
                  "sitk", "importlib", "importlib.util", "logging", "log", "protocol", "traceback", "ast", "ort", "self.ui",
                  "psutil", "proctree", "uuid", "importlib.metadata", "site", "re"}
#: Methods of the widgets, models and parameter node wrapper that the widget code calls.
WIDGET_RECEIVERS = ("self.ui.", "view.", "tableView.", "model.", "self._parameterNode.", "combo.", "uiWidget.")


def _sources() -> list[Path]:
    """The module's Python files."""
    return [MODULE_DIR / "LiverTumorSeg.py", *sorted((MODULE_DIR / "LiverTumorSegLogic").glob("*.py")),
            *sorted((MODULE_DIR / "LiverTumorSegGui").glob("*.py"))]


def _own_names() -> set[str]:
    """Names the module and the library define themselves (classes, functions, constants)."""
    names = set()
    for path in _sources() + sorted((REPO / "LiverTumorSegLib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return names


def used_names() -> set[str]:
    """Every Slicer-side name the module uses: "slicer.util.x", "slicer.X", "Method", "widget.method", "ui:Class"."""
    used, own = set(), _own_names()
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "slicer":
                used |= {f"from:{node.module}.{a.name}" for a in node.names}
            if not isinstance(node, ast.Attribute):
                continue
            receiver = ast.unparse(node.value)
            if receiver == "slicer.util":
                used.add(f"slicer.util.{node.attr}")
            elif receiver == "slicer":
                used.add(f"slicer.{node.attr}")
            elif receiver in PYTHON_MODULES or receiver.startswith(("vtk", "qt", "self.assert")):
                continue
            elif node.attr[:1].isupper() and node.attr not in own:
                used.add(node.attr)
            elif path.name in ("LiverTumorSeg.py", "slicercompat.py") and (receiver + ".").startswith(WIDGET_RECEIVERS):
                used.add(f"widget.{node.attr}")
    used -= {"slicer.util", "widget.text", "widget.enabled", "widget.toolTip", "widget.value", "widget.visible",
             "widget.collapsed", "widget.connect", "widget.inputVolume", "widget.outputSegmentation", "widget.device",
             "widget.fast", "widget.liverOnly", "widget.minLesionMm3"}  # Qt properties / parameter node fields
    ui = ET.parse(MODULE_DIR / "Resources" / "UI" / "LiverTumorSeg.ui").getroot()
    used |= {f"ui:{w.get('class')}" for w in ui.iter("widget")}
    return used


def listed() -> dict[str, list[str]]:
    """The checked list: name -> tags it was found at."""
    out = {}
    for line in LIST_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, *tags = line.split()
            out[name] = tags
    return out


def _git(repo: str, *args: str) -> str:
    """Output of a git command in `repo`."""
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, check=False).stdout


def names_at(repo: str, tag: str) -> set[str]:
    """Names Slicer's sources at `tag` declare, call or define (see the module docstring)."""
    code = ["*.h", "*.cxx", "*.txx", "*.py"]
    calls = set(re.findall(r"\b([A-Za-z_]\w*)\s*\(", _git(repo, "grep", "-h", "-o", "-E", r"\b[A-Za-z_]\w*\s*\(", tag, "--", *code)))
    macros = _git(repo, "grep", "-h", "-o", "-E", r"vtk\w*Macro\(\s*\w+", tag, "--", "*.h")
    for kind, base in re.findall(r"vtk(\w*)Macro\(\s*(\w+)", macros):
        calls |= {f"Set{base}", f"Get{base}"} | ({f"{base}On", f"{base}Off"} if kind == "Boolean" else set())
    words = set(re.findall(r"\b\w+\b", _git(repo, "grep", "-h", "-w", "-E", r"enum|class|[A-Z][A-Za-z]+Event|MODE_\w+", tag, "--", "*.h")))
    util = set(re.findall(r"^def (\w+)\(", _git(repo, "show", f"{tag}:Base/Python/slicer/util.py"), re.M))
    slicer_py = set(re.findall(r"\b\w+\b", _git(repo, "grep", "-h", "-w", "-E", r"mrmlScene|modules|app", tag, "--", "Base/Python/slicer/*.py")))
    pydefs = set(re.findall(r"(?:def|class) (\w+)", _git(repo, "grep", "-h", "-E", r"^\s*(def|class) \w+", tag, "--", "Base/Python/slicer/")))
    pydefs |= set(re.findall(r"^(\w+)\s*=", _git(repo, "grep", "-h", "-E", r"^\w+\s*=", tag, "--", "Base/Python/slicer/"), re.M))
    ui = set(re.findall(r'class="(\w+)"', _git(repo, "grep", "-h", "-o", "-E", r'class="\w+"', tag, "--", "*.ui")))
    fromImports = {f"from:slicer.{m}.{n}" for m in ("i18n", "parameterNodeWrapper", "ScriptedLoadableModule", "util")
                   for n in pydefs} | {f"from:slicer.{n}" for n in words}  # from slicer import vtkMRML...Node
    return (fromImports | {f"slicer.util.{n}" for n in util} | {f"slicer.{n}" for n in calls | words | slicer_py}
            | calls | words | {f"widget.{n}" for n in calls} | {f"ui:{n}" for n in ui | words})


def main(argv: list[str]) -> int:
    """Check every used name at the given tags of a Slicer clone; write the list of those found at all."""
    repo, tags = argv[1], argv[2:]
    found = {tag: names_at(repo, tag) for tag in tags}
    names = sorted(used_names())
    missing = {n: [t for t in tags if n not in found[t]] for n in names}
    lines = [f"# Slicer APIs the module uses, found in Slicer's sources at {' '.join(tags)} (by Testing/slicer/slicer_api.py)."]
    lines += [f"{n} {' '.join(tags)}" for n in names if not missing[n]]
    LIST_FILE.write_text("\n".join(lines) + "\n")
    for n in names:
        if missing[n]:
            print(f"MISSING {n}: not at {', '.join(missing[n])}")
    return 1 if any(missing.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
