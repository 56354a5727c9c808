"""Library pieces the panel needs before the first-use install: HU window presets and the error types.

`import LiverTumorSegLib` runs its package __init__, which imports the engine (cc3d, onnxruntime).
The dependency-free modules windowing.py and errors.py are loaded here from their files and registered
under their package names, so a later `import LiverTumorSegLib` reuses them (same error classes).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .engine_process import libraryParentDir

STANDALONE = ("windowing", "errors")  # modules of LiverTumorSegLib that import nothing of the engine


def libraryModule(name: str) -> ModuleType:
    """LiverTumorSegLib.<name> (one of STANDALONE), without importing the rest of the library."""
    fullName = f"LiverTumorSegLib.{name}"
    if fullName in sys.modules:
        return sys.modules[fullName]
    if name not in STANDALONE or "LiverTumorSegLib" in sys.modules:
        return importlib.import_module(fullName)
    path = Path(libraryParentDir()) / "LiverTumorSegLib" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(fullName, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[fullName] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[fullName]
        raise
    return module


def windowPresets() -> dict:
    """The library's HU display window presets by name (LiverTumorSegLib.windowing.PRESETS)."""
    return libraryModule("windowing").PRESETS


def errors() -> ModuleType:
    """LiverTumorSegLib.errors (the typed exceptions), importable before the first-use install."""
    return libraryModule("errors")
