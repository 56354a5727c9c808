"""Which Python packages the bundled LiverTumorSegLib needs beyond what Slicer ships, and how to ask for them.

Nothing here imports those packages: the module must load (and say what is missing) without them.
"""
from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys

#: Import name -> pip requirement of every runtime dependency that Slicer's Python does not bundle, pinned.
#: These are the pins of the `slicer-runtime` extra in pyproject.toml (a test keeps the two equal; the
#: extension ships without pyproject.toml). (max Python, requirement): the first that fits this Python;
#: onnxruntime wheels after 1.19.2 no longer cover Python 3.9 (Slicer 5.8).
RUNTIME_PINS: dict[str, list[tuple[tuple[int, int], str]]] = {
    "onnxruntime": [((3, 9), "onnxruntime==1.19.2"), ((99, 0), "onnxruntime==1.31.1")],
    "cc3d": [((99, 0), "connected-components-3d==4.1.1")],
    "scipy": [((99, 0), "scipy==1.13.1")],  # bundled by Slicer 5.8 and 5.10 (1.13.1): only if missing
    # Cancel kills the PythonSlicer launcher's child processes with it; not bundled by Slicer 5.8.1 / 5.10.0
    # (no psutil anywhere in Slicer's source at those tags). abi3 wheels for every platform, Python >= 3.6.
    "psutil": [((99, 0), "psutil==7.2.2")],
}
GPU_PINS: list[tuple[tuple[int, int], str]] = [((3, 9), "onnxruntime-gpu==1.19.2"), ((99, 0), "onnxruntime-gpu==1.31.1")]
RUNTIME_PACKAGES: dict[str, str] = {"onnxruntime": "onnxruntime", "cc3d": "connected-components-3d", "scipy": "scipy",
                                    "psutil": "psutil"}


def pinFor(pins: list[tuple[tuple[int, int], str]], pythonVersion: tuple[int, int]) -> str:
    """The pinned requirement of the first entry whose maximum Python version covers `pythonVersion`."""
    return next(req for maxVersion, req in pins if tuple(pythonVersion[:2]) <= maxVersion)


def missingModules() -> list[str]:
    """Import names of the runtime dependencies that cannot be imported here."""
    importlib.invalidate_caches()
    return [name for name in RUNTIME_PACKAGES if importlib.util.find_spec(name) is None]


def hasNvidiaGpu() -> bool:
    """True when an NVIDIA driver is installed (its `nvidia-smi` tool is on the PATH)."""
    return shutil.which("nvidia-smi") is not None


def pipRequirements(missing: list[str], nvidiaGpu: bool, pythonVersion: tuple[int, int] = tuple(sys.version_info[:2])) -> list[str]:
    """Pinned pip requirements installing the `missing` import names (the CUDA build of ONNX Runtime with a GPU)."""
    requirements = []
    for name in missing:
        pins = GPU_PINS if name == "onnxruntime" and nvidiaGpu else RUNTIME_PINS[name]
        requirements.append(pinFor(pins, pythonVersion))
    return requirements


def requireDependencies() -> None:
    """Raise ModuleNotFoundError naming the packages to install when any runtime dependency is missing."""
    missing = missingModules()
    if missing:
        requirements = pipRequirements(missing, hasNvidiaGpu())
        raise ModuleNotFoundError(
            f"LiverTumorSeg needs the Python packages {', '.join(requirements)}. Open the LiverTumorSeg module "
            f"once to install them, or run in Slicer's Python console: slicer.util.pip_install({requirements!r})"
        )
