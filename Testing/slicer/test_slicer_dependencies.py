"""The first-use dependency check: what is installed into Slicer's Python, pinned as in pyproject.toml."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from LiverTumorSegLogic import dependencies

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

REPO = Path(__file__).resolve().parents[2]
LIBRARY_DIR = REPO / "LiverTumorSegLib"
SLICER_BUNDLED = {"numpy", "SimpleITK"}  # shipped with every Slicer
# Not used inside Slicer: the command line tool, the DICOM SEG/SR export (highdicom, imported on use) and the
# DICOM CT series writer (pydicom).
CLI_ONLY = {"cli.py", "dicom_seg.py", "dicom_sr.py", "dicom_series.py", "cli_cohort.py", "cohort.py", "caserun.py",
            "caseplan.py"}  # + cohort runs (Dask, tqdm)


def _extra(name: str) -> list[Requirement]:
    """The requirements of one optional-dependency group of pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["optional-dependencies"][name]]


def _pinned(requirements: list[Requirement], python: str) -> set[str]:
    """`name==version` of the requirements whose marker holds for Python `python`."""
    env = {"python_version": python, "python_full_version": python + ".0"}
    return {f"{r.name}{r.specifier}" for r in requirements if r.marker is None or r.marker.evaluate(env)}


def test_runtime_packages_cover_every_library_dependency_slicer_lacks():
    imported = set()
    for path in LIBRARY_DIR.rglob("*.py"):
        if path.name in CLI_ONLY:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"LiverTumorSegLib"}
    assert third_party - SLICER_BUNDLED <= set(dependencies.RUNTIME_PACKAGES)


@pytest.mark.parametrize("python", ["3.9", "3.12"], ids=["slicer-5.8", "slicer-5.10"])
def test_installed_pins_are_the_pyproject_pins_for_each_slicer_python(python):
    version = tuple(int(v) for v in python.split("."))
    names = list(dependencies.RUNTIME_PACKAGES)
    assert set(dependencies.pipRequirements(names, False, version)) == _pinned(_extra("slicer-runtime"), python)
    gpu = dependencies.pipRequirements(["onnxruntime"], True, version)
    assert set(gpu) == _pinned(_extra("slicer-runtime-gpu"), python)


def test_python_3_9_gets_the_last_onnxruntime_with_3_9_wheels():
    assert dependencies.pipRequirements(["onnxruntime", "cc3d"], False, (3, 9)) == [
        "onnxruntime==1.19.2", "connected-components-3d==4.1.1"]
    assert dependencies.pipRequirements(["onnxruntime"], True, (3, 12)) == ["onnxruntime-gpu==1.31.1"]


def test_dependency_check_passes_here():
    assert dependencies.missingModules() == []  # this environment has everything
    dependencies.requireDependencies()
