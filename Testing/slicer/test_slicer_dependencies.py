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


def _pinned(requirements: list[Requirement], python: str, platform: dict[str, str] | None = None) -> set[str]:
    """`name<specifier>` of the requirements whose marker holds for Python `python` (on `platform`, else here)."""
    env = {**(platform or {}), "python_version": python, "python_full_version": python + ".0"}
    return {f"{r.name}{r.specifier}" for r in requirements if r.marker is None or r.marker.evaluate(env)}


def _normal(requirements: list[str]) -> set[str]:
    """Requirement strings in packaging's normal form (specifiers sorted)."""
    return {f"{r.name}{r.specifier}" for r in map(Requirement, requirements)}


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
    # OpenVINO is the library's faster CPU engine when installed; without it the library runs on ONNX Runtime.
    optional = set(dependencies.OPTIONAL_PINS)
    assert optional == {"openvino"}
    assert third_party - SLICER_BUNDLED - optional <= set(dependencies.RUNTIME_PACKAGES)


@pytest.mark.parametrize("python", ["3.9", "3.12"], ids=["slicer-5.8", "slicer-5.10"])
def test_installed_pins_are_the_pyproject_pins_for_each_slicer_python(python):
    version = tuple(int(v) for v in python.split("."))
    names = list(dependencies.RUNTIME_PACKAGES)
    required = {p for p in _pinned(_extra("slicer-runtime"), python) if not p.startswith(tuple(dependencies.OPTIONAL_PINS))}
    assert _normal(dependencies.pipRequirements(names, False, version)) == required
    gpu = dependencies.pipRequirements(["onnxruntime"], True, version)
    assert _normal(gpu) == _pinned(_extra("slicer-runtime-gpu"), python)


def test_python_3_9_gets_the_last_onnxruntime_with_3_9_wheels():
    assert dependencies.pipRequirements(["onnxruntime", "cc3d"], False, (3, 9)) == [
        "onnxruntime==1.19.2", "connected-components-3d==4.1.1"]


@pytest.mark.parametrize("version, platform", [
    ("1.19.2", "macOS 11-12 Intel or Apple silicon (universal2, cp312)"), ("1.23.2", "macOS 13 Intel (last x86_64 wheel)"),
    ("1.24.1", "Linux glibc 2.27"), ("1.31.1", "Windows, Linux glibc 2.28+, macOS 14+ Apple silicon (tested)")])
def test_python_3_12_takes_whichever_onnxruntime_this_platform_has_wheels_for(version, platform):
    from packaging.specifiers import SpecifierSet

    for gpu in (False, True):
        (requirement,) = dependencies.pipRequirements(["onnxruntime"], gpu, (3, 12))
        assert version in Requirement(requirement).specifier, f"{platform} could not install {requirement}"
    assert "1.19.1" not in SpecifierSet(">=" + dependencies.MINIMUM_VERSIONS["onnxruntime"])


def _fake_install(monkeypatch, tmp_path, importable=True, version="1.31.1", leftover=False):
    """Pretend onnxruntime is in a given state (the rest installed), with site-packages in tmp_path."""
    real_find_spec, real_version = dependencies.importlib.util.find_spec, dependencies.installedVersion
    monkeypatch.setattr(dependencies.importlib.util, "find_spec",
                        lambda name, *a: (object() if importable else None) if name == "onnxruntime" else real_find_spec(name, *a))
    monkeypatch.setattr(dependencies, "installedVersion", lambda name: version if name == "onnxruntime" else real_version(name))
    monkeypatch.setattr(dependencies.site, "getsitepackages", lambda: [str(tmp_path)])
    monkeypatch.setattr(dependencies.site, "getusersitepackages", lambda: str(tmp_path / "user"))
    if leftover:
        (tmp_path / "~nnxruntime").mkdir()


@pytest.mark.parametrize("state, reason", [
    ({"importable": False, "version": None}, "missing"),
    ({"importable": True, "version": None}, "broken"),
    ({"importable": False, "version": "1.31.1"}, "broken"),
    ({"leftover": True}, "broken"),
    ({"version": "1.14.1"}, "too old: 1.14.1"),
], ids=["missing", "files-without-metadata", "metadata-without-files", "pip-leftovers", "too-old"])
def test_a_dependency_counts_only_when_importable_at_a_usable_version(monkeypatch, tmp_path, state, reason):
    _fake_install(monkeypatch, tmp_path, **state)
    problems = dependencies.dependencyProblems()
    assert list(problems) == ["onnxruntime"] and problems["onnxruntime"].startswith(reason)
    arguments = dependencies.pipArguments(problems, False)
    assert ("--force-reinstall" in arguments) == (reason != "missing"), "a broken or old install is reinstalled"
    with pytest.raises(ModuleNotFoundError, match="onnxruntime"):
        dependencies.requireDependencies()


def test_the_offline_message_says_what_to_install_and_how():
    advice = dependencies.offlineAdvice(["onnxruntime==1.19.2", "psutil==7.2.2"])
    assert "pip download" in advice and "--no-index" in advice and "'psutil==7.2.2'" in advice


def test_dependency_check_passes_here():
    assert dependencies.missingModules() == []  # this environment has everything
    dependencies.requireDependencies()


#: Marker variables of the platforms Slicer ships for (and one without OpenVINO wheels).
PLATFORMS = {"windows": {"sys_platform": "win32", "platform_machine": "AMD64"},
             "linux-x86_64": {"sys_platform": "linux", "platform_machine": "x86_64"},
             "macos-arm64": {"sys_platform": "darwin", "platform_machine": "arm64"},
             "macos-x86_64": {"sys_platform": "darwin", "platform_machine": "x86_64"},
             "linux-aarch64": {"sys_platform": "linux", "platform_machine": "aarch64"}}


def _marked(requirements: list[str], env: dict[str, str]) -> set[str]:
    """`name<specifier>` of the requirement strings whose marker holds in `env`."""
    return _pinned([Requirement(r) for r in requirements], env["python_version"], env)


@pytest.mark.parametrize("platform", list(PLATFORMS))
@pytest.mark.parametrize("python", ["3.9", "3.12"], ids=["slicer-5.8", "slicer-5.10"])
def test_optional_pins_and_markers_are_the_pyproject_ones_on_every_platform(python, platform):
    env = {**PLATFORMS[platform], "python_version": python}
    version = tuple(int(v) for v in python.split("."))
    installed = dependencies.pipRequirements(list(dependencies.RUNTIME_PACKAGES), False, version)
    optional = [dependencies.pinFor(pins, version) for pins in dependencies.OPTIONAL_PINS.values()]
    assert _marked(installed + optional, env) == _pinned(_extra("slicer-runtime"), python, env)
    assert any(r.startswith("openvino") for r in _marked(optional, env)) == (platform != "linux-aarch64")


def test_openvino_pins_per_slicer_python():
    (pin39,) = dependencies.withoutMarker([dependencies.pinFor(dependencies.OPTIONAL_PINS["openvino"], (3, 9))])
    assert pin39 == "openvino==2025.3.0"  # the last release with cp39 wheels
    (pin312,) = dependencies.withoutMarker([dependencies.pinFor(dependencies.OPTIONAL_PINS["openvino"], (3, 12))])
    specifier = Requirement(pin312).specifier
    # 2026.4.1: the main environment's (tested) pin; 2025.4.1: the last macOS x86_64 and manylinux2014 cp312 wheels.
    assert {"2025.3.0", "2025.4.1", "2026.4.1"} <= set(specifier.filter(["2025.3.0", "2025.4.1", "2026.4.1"]))
    assert not list(specifier.filter(["2025.2.0", "2026.5.0"]))


def _without_openvino(monkeypatch, version=None):
    """Pretend OpenVINO is not importable here (or importable at `version`)."""
    real_find_spec, real_version = dependencies.importlib.util.find_spec, dependencies.importlib.metadata.version
    monkeypatch.setattr(dependencies.importlib.util, "find_spec",
                        lambda name, *a: (object() if version else None) if name == "openvino" else real_find_spec(name, *a))

    def fake_version(name):
        if name == "openvino" and version is None:
            raise dependencies.importlib.metadata.PackageNotFoundError(name)
        return version if name == "openvino" else real_version(name)
    monkeypatch.setattr(dependencies.importlib.metadata, "version", fake_version)


def test_missing_openvino_is_offered_but_never_blocks_the_module(monkeypatch):
    _without_openvino(monkeypatch)
    assert dependencies.dependencyProblems() == {} and dependencies.missingModules() == []
    dependencies.requireDependencies()  # does not raise
    linux = PLATFORMS["linux-x86_64"]
    assert dependencies.withoutMarker(dependencies.optionalRequirements((3, 9), linux)) == ["openvino==2025.3.0"]
    assert dependencies.optionalRequirements((3, 12), PLATFORMS["linux-aarch64"]) == [], "no wheel there: not offered"


def test_an_openvino_older_than_tested_is_offered_the_pinned_upgrade(monkeypatch):
    _without_openvino(monkeypatch, version="2024.6.0")
    assert dependencies.withoutMarker(dependencies.optionalRequirements((3, 12), PLATFORMS["windows"])) == [
        "openvino>=2025.3.0,<=2026.4.1"]
    _without_openvino(monkeypatch, version="2025.3.0")
    assert dependencies.optionalRequirements((3, 9), PLATFORMS["windows"]) == []


def test_optional_packages_are_offered_once_per_pin(monkeypatch):
    _without_openvino(monkeypatch)
    offer = dependencies.optionalToOffer("", (3, 9))
    assert dependencies.withoutMarker(offer) == ["openvino==2025.3.0"]
    assert dependencies.optionalToOffer(" ".join(offer), (3, 9)) == [], "declined or failed: not asked again"
    assert dependencies.optionalToOffer(" ".join(offer), (3, 12)) != [], "a new pin is offered again"


def test_a_failed_optional_install_is_logged_and_never_raises(caplog):
    calls = []

    def pip_install(arguments):
        calls.append(arguments)
        raise RuntimeError("No matching distribution found for openvino==2025.3.0")

    requirement = dependencies.pinFor(dependencies.OPTIONAL_PINS["openvino"], (3, 9))
    failures = dependencies.installOptional([requirement], pip_install)
    assert calls == [["openvino==2025.3.0"]], "pip gets the requirement without its (holding) marker"
    assert "No matching distribution" in failures[requirement]
    assert "running on ONNX Runtime" in caplog.text
    assert dependencies.installOptional([requirement], lambda arguments: None) == {}
