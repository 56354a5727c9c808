"""Typed configuration of a segmentation run (one dataclass per concern)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MODELS_DIR_ENV = "LIVERTUMORSEG_MODELS_DIR"
MODEL_SET_ENV = "LIVERTUMORSEG_MODEL_SET"  # the model set used when a call names none (default: the folder's default)
DEFAULT_MODELS_DIR = Path(__file__).with_name("models")


def models_dir(override: str | Path | None = None) -> Path:
    """The models folder: `override`, else $LIVERTUMORSEG_MODELS_DIR, else the bundled one."""
    if override:
        return Path(override)
    env = os.environ.get(MODELS_DIR_ENV)
    return Path(env) if env else DEFAULT_MODELS_DIR


#: Axes (z=0, y=1, x=2) the tumor stage is mirrored along with `tta` (test-time augmentation).
TTA_MIRROR_AXES: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the networks run."""

    device: str = "auto"  # "auto" | "cpu" | "cuda"
    threads: int | None = None  # intra-op threads; None = the engine's default (all cores)
    cpu_engine: str = "auto"  # "auto" (OpenVINO when usable, else ONNX Runtime) | "openvino" | "onnxruntime"


@dataclass(frozen=True)
class SlidingWindowConfig:
    """Sliding-window inference over volumes larger than a patch."""

    overlap: float = 0.5  # fraction of the patch shared by neighbouring windows
    gaussian_sigma: float = 0.125  # blending weight sigma, as a fraction of the patch size
    # Test-time mirroring per stage: axes (z=0, y=1, x=2) along which each window is also run mirrored and the
    # probabilities averaged (2^n runs per window). Empty = off (the default: see the model card for what it buys).
    mirror_liver: tuple[int, ...] = ()
    mirror_tumor: tuple[int, ...] = ()
    # A body taller than one liver window: run the topmost row of windows first and stop there when it holds a whole
    # liver (its largest candidate, >= min_liver_ml, stays `settle_band_voxels` clear of that row's lower edge), as
    # the original runs one window over the liver; otherwise every window runs, as without this.
    settle_liver_on_top_row: bool = True
    settle_band_voxels: int = 3


@dataclass(frozen=True)
class PostprocessConfig:
    """Clean-up of the network output."""

    min_lesion_mm3: float = 50.0  # tumor components smaller than this are dropped
    keep_largest_liver: bool = True
    fill_liver_holes: bool = True
    # A stage-1 liver candidate is rejected ("no liver found") when it is smaller than this or its median
    # intensity is not liver tissue (fatty liver ~ -30 HU ... enhanced liver ~ 200 HU): air, fat or bone is no liver.
    min_liver_ml: float = 30.0
    liver_median_hu: tuple[float, float] = (-60.0, 250.0)


@dataclass(frozen=True)
class InputCheckConfig:
    """Sanity checks on the input CT."""

    force: bool = False  # accept images that do not look like CT
    min_voxels_per_axis: int = 8
    min_extent_mm: float = 30.0  # smallest field of view accepted along each axis
    max_voxels: int = 1_500_000_000  # about 1024 x 1024 x 1400; more does not fit a laptop


@dataclass(frozen=True)
class SegmentationConfig:
    """Everything one `segment` call needs besides the image."""

    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    window: SlidingWindowConfig = field(default_factory=SlidingWindowConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    checks: InputCheckConfig = field(default_factory=InputCheckConfig)
    liver_only: bool = False  # skip the tumor stage
    models_dir: Path | None = None
    model_set: str | None = None  # a set named in the models folder's sets.json; None = its default
    modality: str = "ct"  # "ct" | "mr": how the networks take the image (set by `segment` from its input)
