"""Qt-free logic of the LiverTumorSeg Slicer module: runs with slicer-core alone (no GUI, no Qt).

LiverTumorSegLib (the segmentation engine bundled with the extension) is imported lazily, after
`dependencies.requireDependencies()`, so that this package and the module load without onnxruntime.
"""
from .background import BackgroundRun, RunState
from .batch import CaseReport
from .logic import LiverTumorSegLogic, RunOptions

__all__ = ["LiverTumorSegLogic", "RunOptions", "CaseReport", "BackgroundRun", "RunState"]
