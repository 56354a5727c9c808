"""Which Python packages the bundled LiverTumorSegLib needs beyond what Slicer ships, and how to ask for them.

Nothing here imports those packages: the module must load (and say what is missing) without them.
A package counts as present only when it is importable AND its installed distribution has at least the
tested minimum version; an install that pip left half done (importable without metadata, metadata
without the package, or pip's "~name" leftovers in site-packages) is reported as broken and repaired
with a forced reinstall.

ONNX Runtime wheels per platform (PyPI file lists, checked 2026-12-03): 1.19.2 is the last with Python 3.9
wheels (Slicer 5.8) and has them for win_amd64, manylinux_2_27 x86_64/aarch64 and macOS 11+ universal2
(Intel and Apple silicon); for Python 3.12 (Slicer 5.10) macOS x86_64 wheels end at 1.23.2 (macOS 13+),
arm64 wheels from 1.24 need macOS 14+, and Linux wheels need glibc 2.27 (up to 1.24) or 2.28 (later).
So Python 3.10+ gets a range from the tested minimum 1.19.2 (which has cp312 wheels for macOS 11+ and
glibc 2.27) to the tested 1.31.1: pip takes the newest wheel this machine can install.

OpenVINO is an optional speed-up (the library's faster CPU engine: 52.6 s instead of 76.2 s, 2.83 instead of
3.58 GB peak on the clinical-size benchmark CT, benchmarks/results/default_set.md); without it the library runs
on ONNX Runtime. OpenVINO wheels per platform (PyPI file list of openvino, checked 2026-12-03; no sdist):
2025.3.0 is the last with Python 3.9 wheels (win_amd64, manylinux2014 x86_64, macOS 10.15+ x86_64, macOS 11+
arm64); for Python 3.12, 2026.x has win_amd64, manylinux_2_28 x86_64 and macOS 11+ arm64 wheels, and macOS
x86_64 and glibc < 2.28 wheels end at 2025.4.1. So Python 3.10+ gets a range from 2025.3.0 to the tested
2026.4.1. Both need numpy >= 1.16.6 and < 2.3 (2025.3.0) or < 2.6 (2026.4.1), which Slicer's bundled numpy
(1.26.4 in 5.8, 2.0.2 in 5.10) meets, so pip leaves numpy alone. Its install is tried apart from the required
packages and may fail (no wheel here, no internet): it never blocks the module.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import re
import shutil
import site
import sys
from pathlib import Path
from typing import Callable

#: Import name -> pip requirement of every runtime dependency that Slicer's Python does not bundle.
#: These are the requirements of the `slicer-runtime` extra in pyproject.toml (a test keeps the two equal;
#: the extension ships without pyproject.toml). (max Python, requirement): the first that fits this Python.
RUNTIME_PINS: dict[str, list[tuple[tuple[int, int], str]]] = {
    "onnxruntime": [((3, 9), "onnxruntime==1.19.2"), ((99, 0), "onnxruntime>=1.19.2,<=1.31.1")],
    "cc3d": [((99, 0), "connected-components-3d==4.1.1")],
    "scipy": [((99, 0), "scipy==1.13.1")],  # bundled by Slicer 5.8 and 5.10 (1.13.1): only if missing
    # Cancel kills the PythonSlicer launcher's child processes with it; not bundled by Slicer 5.8.1 / 5.10.0
    # (no psutil anywhere in Slicer's source at those tags). abi3 wheels for every platform, Python >= 3.6.
    "psutil": [((99, 0), "psutil==7.2.2")],
}
#: The CUDA build (wheels for win_amd64 and manylinux x86_64 only; elsewhere hasNvidiaGpu() is False).
GPU_PINS: list[tuple[tuple[int, int], str]] = [((3, 9), "onnxruntime-gpu==1.19.2"),
                                               ((99, 0), "onnxruntime-gpu>=1.19.2,<=1.31.1")]
RUNTIME_PACKAGES: dict[str, str] = {"onnxruntime": "onnxruntime", "cc3d": "connected-components-3d", "scipy": "scipy",
                                    "psutil": "psutil"}
#: Import name -> the distributions that provide it (the CPU or the CUDA build of ONNX Runtime).
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
                                             "cc3d": ("connected-components-3d",), "scipy": ("scipy",),
                                             "psutil": ("psutil",)}
#: The platforms with OpenVINO wheels for Slicer's Pythons (see the module docstring), as a pip environment marker.
OPENVINO_MARKER = ("(sys_platform == 'linux' and platform_machine == 'x86_64') or sys_platform == 'win32' "
                   "or sys_platform == 'darwin'")
#: Optional speed-ups (import name -> pins as in RUNTIME_PINS, each with its platform marker): installed where a
#: wheel exists, never required. In pyproject.toml's `slicer-runtime` extra too (a test keeps the two equal).
OPTIONAL_PINS: dict[str, list[tuple[tuple[int, int], str]]] = {
    "openvino": [((3, 9), f"openvino==2025.3.0; {OPENVINO_MARKER}"),
                 ((99, 0), f"openvino>=2025.3.0,<=2026.4.1; {OPENVINO_MARKER}")],
}
#: The oldest optional version tested with the engine (an older one is offered the pinned upgrade).
OPTIONAL_MINIMUM_VERSIONS: dict[str, str] = {"openvino": "2025.3.0"}
#: The oldest version of each that the engine was tested with (an older one is replaced).
MINIMUM_VERSIONS: dict[str, str] = {"onnxruntime": "1.19.2", "cc3d": "4.1.1", "scipy": "1.13.1", "psutil": "5.9.0"}


def pinFor(pins: list[tuple[tuple[int, int], str]], pythonVersion: tuple[int, int]) -> str:
    """The requirement of the first entry whose maximum Python version covers `pythonVersion`."""
    return next(req for maxVersion, req in pins if tuple(pythonVersion[:2]) <= maxVersion)


def versionTuple(version: str) -> tuple[int, ...]:
    """(major, minor, patch, ...) of a version string, ignoring suffixes such as "rc1" or "+cu121"."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def installedVersion(name: str) -> str | None:
    """The version of the installed distribution providing import name `name` (None if none is installed)."""
    for distribution in DISTRIBUTIONS[name]:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def interruptedLeftovers(name: str) -> list[Path]:
    """pip's "~name" folders left in site-packages by an interrupted install or uninstall."""
    folders = [Path(p) for p in site.getsitepackages() + [site.getusersitepackages()] if Path(p).is_dir()]
    return [f for folder in folders for f in folder.glob("~" + name[1:] + "*")]


def dependencyProblems() -> dict[str, str]:
    """Import name -> what is wrong ("missing", "broken: ...", "too old: ...") for each unusable dependency."""
    importlib.invalidate_caches()
    problems = {}
    for name in RUNTIME_PACKAGES:
        importable, version = importlib.util.find_spec(name) is not None, installedVersion(name)
        if not importable and version is None:
            problems[name] = "missing"
        elif not importable or version is None or interruptedLeftovers(name):
            problems[name] = "broken: an earlier installation was interrupted"
        elif versionTuple(version) < versionTuple(MINIMUM_VERSIONS[name]):
            problems[name] = f"too old: {version} is installed, {MINIMUM_VERSIONS[name]} or newer is needed"
    return problems


def missingModules() -> list[str]:
    """Import names of the runtime dependencies that are missing, broken or too old here."""
    return list(dependencyProblems())


def hasNvidiaGpu() -> bool:
    """True when an NVIDIA driver is installed (its `nvidia-smi` tool is on the PATH)."""
    return shutil.which("nvidia-smi") is not None


def pipRequirements(missing: list[str], nvidiaGpu: bool, pythonVersion: tuple[int, int] = tuple(sys.version_info[:2])) -> list[str]:
    """Pip requirements installing the `missing` import names (the CUDA build of ONNX Runtime with a GPU)."""
    requirements = []
    for name in missing:
        pins = GPU_PINS if name == "onnxruntime" and nvidiaGpu else RUNTIME_PINS[name]
        requirements.append(pinFor(pins, pythonVersion))
    return requirements


def pipArguments(problems: dict[str, str], nvidiaGpu: bool) -> list[str]:
    """Arguments of slicer.util.pip_install for `dependencyProblems()`: a forced reinstall repairs broken ones."""
    requirements = pipRequirements(list(problems), nvidiaGpu)
    repair = any(not reason.startswith("missing") for reason in problems.values())
    return (["--force-reinstall", "--no-deps"] if repair else []) + requirements


def offlineAdvice(requirements: list[str]) -> str:
    """What to do when pip cannot download: install from wheel files fetched on another computer."""
    quoted = " ".join(f'"{r}"' for r in requirements)
    return ("Slicer could not download them (no internet connection, or a proxy blocks it). Connect and open the "
            "module again, or on a computer with internet run `pip download --only-binary=:all: --python-version "
            f"{sys.version_info[0]}.{sys.version_info[1]} -d wheels {quoted}`, copy the wheels folder here, and run "
            "in Slicer's Python console: slicer.util.pip_install(['--no-index', '--find-links', 'PATH/TO/wheels', "
            + ", ".join(repr(r) for r in requirements) + "])")


def requireDependencies() -> None:
    """Raise ModuleNotFoundError naming the packages to install when any runtime dependency is unusable."""
    problems = dependencyProblems()
    if problems:
        arguments = pipArguments(problems, hasNvidiaGpu())
        details = "; ".join(f"{name} {reason}" for name, reason in problems.items())
        raise ModuleNotFoundError(
            f"LiverTumorSeg needs the Python packages {', '.join(a for a in arguments if not a.startswith('--'))} "
            f"({details}). Open the LiverTumorSeg module once to install them, or run in Slicer's Python console: "
            f"slicer.util.pip_install({arguments!r})"
        )


def markerHolds(requirement: str, environment: dict[str, str] | None = None) -> bool:
    """True when the environment marker of pip requirement `requirement` (if any) holds for this Python
    (or for `environment`: marker variables such as {"sys_platform": "darwin"} replacing this machine's)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # Slicer bundles packaging; pip's own copy otherwise
        from pip._vendor.packaging.requirements import Requirement
    marker = Requirement(requirement).marker
    return marker is None or marker.evaluate(environment)


def optionalRequirements(pythonVersion: tuple[int, int] = tuple(sys.version_info[:2]),
                         environment: dict[str, str] | None = None) -> list[str]:
    """Pip requirements (with their markers) of the optional packages whose platform has wheels and that are not
    installed here at the tested minimum version (an older OpenVINO, e.g. from another extension, is upgraded)."""
    importlib.invalidate_caches()
    requirements = []
    for name, pins in OPTIONAL_PINS.items():
        requirement = pinFor(pins, pythonVersion)
        if not markerHolds(requirement, environment):
            continue
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = None
        if importlib.util.find_spec(name) is None or version is None or \
                versionTuple(version) < versionTuple(OPTIONAL_MINIMUM_VERSIONS[name]):
            requirements.append(requirement)
    return requirements


def optionalToOffer(offered: str, pythonVersion: tuple[int, int] = tuple(sys.version_info[:2])) -> list[str]:
    """`optionalRequirements()`, or none when exactly these were offered before (`offered`: them, space-joined)."""
    requirements = optionalRequirements(pythonVersion)
    return [] if " ".join(requirements) == offered else requirements


def withoutMarker(requirements: list[str]) -> list[str]:
    """The requirements without their environment markers ("openvino==2025.3.0"), to show or to give pip."""
    return [r.split(";")[0].strip() for r in requirements]


def installOptional(requirements: list[str], pipInstall: Callable[[list[str]], None]) -> dict[str, str]:
    """Try `pipInstall([requirement])` for each optional requirement; never raises.

    Returns requirement -> why it failed (empty when all installed); each failure is logged: the library then runs
    on ONNX Runtime.
    """
    failures = {}
    for requirement in requirements:
        try:
            pipInstall(withoutMarker([requirement]))  # its marker holds here (optionalRequirements)
        except Exception as exc:  # pip failed: no wheel for this platform, no internet, ...
            failures[requirement] = str(exc) or exc.__class__.__name__
            logging.warning("LiverTumorSeg: the optional %s was not installed (%s): running on ONNX Runtime",
                            requirement, failures[requirement])
    return failures
