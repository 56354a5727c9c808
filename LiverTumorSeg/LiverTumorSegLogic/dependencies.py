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
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
import shutil
import site
import sys
from pathlib import Path

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
