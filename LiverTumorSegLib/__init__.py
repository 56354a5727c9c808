"""LiverTumorSegLib: cascaded liver and liver-tumor segmentation of abdominal CT (no Slicer needed).

Public API: `segment`, `segment_file`, `run_cohort` (batches, optionally on Dask), `SegmentationResult`, `Lesion`,
`Volume`, `Geometry`, `PRESETS` (HU display windows), `write_dicom_seg` / `read_dicom_seg_labels` (DICOM SEG for
PACS) and the typed errors (`LiverTumorSegError` and its subclasses, also in `errors`).
"""
from . import errors
from .api import make_config, segment, segment_file
from .cases import CaseOptions
from .cohort import run_cohort
from .config import SegmentationConfig
from .dicom_seg import read_dicom_seg_labels, write_dicom_seg
from .errors import (CancelledError, EvaluationError, InvalidInputError, LiverTumorSegError, ModelError, NotCTError,
                     OutputExistsError)
from .followup import compare, write_comparison
from .geometry import Geometry, Volume
from .result import BACKGROUND, LABEL_NAMES, LIVER, TUMOR, Lesion, SegmentationResult
from .windowing import PRESETS, WindowPreset, apply_window

__version__ = "0.1.0"
__all__ = [
    "segment", "segment_file", "make_config", "run_cohort", "CaseOptions", "SegmentationConfig", "SegmentationResult", "Lesion",
    "Volume", "Geometry", "PRESETS", "WindowPreset", "apply_window", "errors",
    "BACKGROUND", "LIVER", "TUMOR", "LABEL_NAMES", "write_dicom_seg", "read_dicom_seg_labels", "__version__",
    "LiverTumorSegError", "InvalidInputError", "NotCTError", "ModelError", "CancelledError", "OutputExistsError",
    "EvaluationError",
]
