"""Which Python packages the bundled LiverTumorSegLib needs beyond what Slicer ships, and how to ask for them.

Nothing here imports those packages: the module must load (and say what is missing) without them.
"""
from __future__ import annotations

import importlib
import importlib.util
import shutil

#: Import name -> pip requirement of every runtime dependency that Slicer's Python does not bundle.
RUNTIME_PACKAGES: dict[str, str] = {
    "onnxruntime": "onnxruntime",
    "cc3d": "connected-components-3d",
    "scipy": "scipy",
}
GPU_RUNTIME = "onnxruntime-gpu"


def missingModules() -> list[str]:
    """Import names of the runtime dependencies that cannot be imported here."""
    importlib.invalidate_caches()
    return [name for name in RUNTIME_PACKAGES if importlib.util.find_spec(name) is None]


def hasNvidiaGpu() -> bool:
    """True when an NVIDIA driver is installed (its `nvidia-smi` tool is on the PATH)."""
    return shutil.which("nvidia-smi") is not None


def pipRequirements(missing: list[str], nvidiaGpu: bool) -> list[str]:
    """pip requirements installing the `missing` import names (the CUDA build of ONNX Runtime with a GPU)."""
    requirements = [RUNTIME_PACKAGES[name] for name in missing]
    if nvidiaGpu and "onnxruntime" in missing:
        requirements[requirements.index("onnxruntime")] = GPU_RUNTIME
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
