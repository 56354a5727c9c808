"""One training case and its label files: the type every data source (adapters, distillation sources) lists."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LabelPart:
    """One label file: `mapping` source value -> target label; empty mapping = any non-zero -> `value`."""

    path: str
    mapping: dict[int, int] = field(default_factory=dict)
    value: int = 0


@dataclass(frozen=True)
class Case:
    """One CT with its labels; `tumors_annotated` says whether absent label 2 means 'no tumor'."""

    case_id: str
    image: str  # a volume file or a DICOM series folder
    labels: tuple[LabelPart, ...]
    tumors_annotated: bool = True
    split: str = ""  # optional fixed split from the source (train | val | test)
    source: str = ""
    soft_target: str = ""  # distillation: a teacher probability (.npz of Training.teacher_labels); labels = p > 0.5
    hard_negatives: LabelPart | None = None  # organs next to the liver: patch centres for hard-negative sampling
    z_slices: tuple[int, int] | None = None  # use only CT slices [a, b) (image k index), e.g. a no-liver slab
