"""Qt-free logic of the LiverTumorSeg Slicer module: runs with slicer-core alone (no GUI, no Qt).

LiverTumorSegLib (the segmentation engine bundled with the extension) is imported lazily, after
`dependencies.requireDependencies()`, so that this package and the module load without onnxruntime.
The engine itself runs in a child process (engine_process.py runs engine_worker.py).
"""
from .batch import CaseReport
from .engine_process import EngineError, EngineRun, RunState
from .logic import LiverTumorSegLogic, RunOptions

__all__ = ["LiverTumorSegLogic", "RunOptions", "CaseReport", "EngineRun", "EngineError", "RunState"]
