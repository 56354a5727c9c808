"""Public entry points: `segment` an image in memory, `segment_file` a path."""
from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable, Union

import numpy as np
import SimpleITK as sitk

from .cascade import Reporter, cascade
from .config import RuntimeConfig, SegmentationConfig
from .config import models_dir as resolve_models_dir
from .geometry import Geometry, Volume
from .io import read_image
from .lesions import measure_lesions, organ_volumes_ml, slices_with_tumor
from .result import SegmentationResult
from .runtime import load_model
from .validation import check_ct

log = logging.getLogger(__name__)
ImageLike = Union[sitk.Image, Volume, str, Path]  # typing.Union: `X | Y` fails at import on Python 3.9 (Slicer 5.8)


def make_config(*, device: str = "auto", fast: bool = False, liver_only: bool = False,
                min_lesion_mm3: float | None = None, threads: int | None = None, force: bool = False,
                models_dir: str | Path | None = None, base: SegmentationConfig | None = None) -> SegmentationConfig:
    """A SegmentationConfig from the keyword options of `segment` (over `base` when given)."""
    cfg = base or SegmentationConfig()
    post = cfg.postprocess if min_lesion_mm3 is None else replace(cfg.postprocess, min_lesion_mm3=float(min_lesion_mm3))
    return replace(cfg, runtime=RuntimeConfig(device=device, threads=threads), postprocess=post,
                   checks=replace(cfg.checks, force=force), fast=fast, liver_only=liver_only,
                   models_dir=Path(models_dir) if models_dir else cfg.models_dir)


def _as_sitk(image: ImageLike) -> sitk.Image:
    """A SimpleITK image from any accepted input form."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Volume):
        return image.to_sitk()
    return image


def segment(image: ImageLike, *, device: str = "auto", fast: bool = False, liver_only: bool = False,
            min_lesion_mm3: float | None = None, threads: int | None = None, force: bool = False,
            models_dir: str | Path | None = None, config: SegmentationConfig | None = None,
            progress: Callable[[float, str], None] | None = None,
            cancel: threading.Event | None = None) -> SegmentationResult:
    """Liver (1) and tumor (2) label map of a CT in HU, on the exact input grid, with lesion measurements.

    `image` is a SimpleITK image, a Volume ((z, y, x) array + geometry) or a path (file or DICOM folder).
    `progress(fraction, message)` is called through every stage; setting `cancel` stops the run
    within about a second with CancelledError. Raises InvalidInputError / NotCTError for unusable
    input and ModelError for missing or tampered models.
    """
    cfg = make_config(device=device, fast=fast, liver_only=liver_only, min_lesion_mm3=min_lesion_mm3,
                      threads=threads, force=force, models_dir=models_dir, base=config)
    rep = Reporter(progress, cancel)
    rep.report(0.0, "reading")
    ct = _as_sitk(image)
    geometry = Geometry.of(ct) if ct.GetDimension() == 3 else None
    hu = sitk.GetArrayViewFromImage(ct)
    warnings = check_ct(ct, hu, cfg.checks)
    rep.lap("read_and_check")
    rep.report(0.03, "loading models")
    folder = resolve_models_dir(cfg.models_dir)  # the `models_dir` argument shadows the function here
    liver = load_model(folder, "liver", cfg.runtime)
    tumor = None if cfg.liver_only else load_model(folder, "tumor", cfg.runtime)
    rep.lap("load_models")
    labels, more = cascade(ct, liver, tumor, cfg, rep)
    rep.report(0.95, "measuring lesions")
    result = _result(labels, hu, geometry, warnings + more, liver.device)
    rep.lap("lesions")
    result.timings = dict(rep.timings)
    rep.report(1.0, "done")
    for w in result.warnings:
        log.warning(w)
    log.info("segmented %s voxels in %.2f s: %s", "x".join(map(str, ct.GetSize())), sum(result.timings.values()), result.summary())
    return result


def _result(labels: np.ndarray, hu: np.ndarray, geometry: Geometry, warnings: list[str], device: str) -> SegmentationResult:
    """Assemble a SegmentationResult with lesion analysis."""
    liver_ml, tumor_ml = organ_volumes_ml(labels, geometry)
    return SegmentationResult(
        labels=labels, geometry=geometry, lesions=measure_lesions(labels, hu, geometry),
        liver_volume_ml=liver_ml, tumor_volume_ml=tumor_ml, slice_has_tumor=slices_with_tumor(labels),
        warnings=warnings, device=device,
    )


def segment_file(path: str | Path, **kwargs) -> SegmentationResult:
    """`segment` for a CT file or DICOM series folder (same keyword options)."""
    return segment(read_image(path), **kwargs)
