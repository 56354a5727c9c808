"""The two-stage cascade: liver at coarse spacing, ROI, tumor inside the ROI, back to the input grid."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import SimpleITK as sitk

from .config import SegmentationConfig
from .errors import CancelledError
from .postprocess import compose_labels, implausible_liver, largest_component
from .preprocess import canonical, liver_roi, model_input, to_model_grid
from .resample import resample_ct, resample_like
from .roi import Box
from .runtime import Model
from .sliding_window import predict_probabilities

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]


@dataclass
class Reporter:
    """Progress, cancellation and per-stage timing for one run."""

    progress: Progress | None = None
    cancel: threading.Event | None = None
    timings: dict[str, float] = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter)

    def check(self) -> None:
        """Raise CancelledError if the caller asked to stop."""
        if self.cancel is not None and self.cancel.is_set():
            raise CancelledError("segmentation cancelled")

    def report(self, fraction: float, message: str) -> None:
        """Forward progress to the caller and check for cancellation."""
        self.check()
        if self.progress:
            self.progress(float(min(max(fraction, 0.0), 1.0)), message)

    def lap(self, stage: str) -> None:
        """Record the seconds since the last lap under `stage`."""
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._t0
        self._t0 = now

    def sub(self, start: float, end: float, label: str) -> Progress:
        """A progress callback mapping [0, 1] onto [start, end] of the whole run."""
        return lambda f, msg: self.report(start + (end - start) * f, f"{label}: {msg}")


def run_model(ct: sitk.Image, model: Model, cfg: SegmentationConfig, progress: Progress, rep: Reporter,
              spacing: tuple[float, float, float] | None = None) -> tuple[sitk.Image, sitk.Image]:
    """(CT on the model grid, softmax probabilities of `model` as a vector image on that grid)."""
    m = model.manifest
    grid = to_model_grid(ct, m) if spacing is None else resample_ct(canonical(ct), spacing)
    probs = predict_probabilities(
        model_input(grid, m), model.run, m.patch_size,
        overlap=cfg.window.overlap, sigma_fraction=cfg.window.gaussian_sigma,
        pad_value=float(m.normalization(np.array([-1024.0]))[0]), cancel=rep.cancel, progress=progress,
    )
    out = sitk.GetImageFromArray(np.moveaxis(probs, 0, -1), isVector=True)
    out.CopyInformation(grid)
    return grid, out


def channel(probs: sitk.Image, index: int) -> sitk.Image:
    """One probability channel of a vector image."""
    return sitk.VectorIndexSelectionCast(probs, index, sitk.sitkFloat32)


def liver_stage(ct: sitk.Image, liver: Model, cfg: SegmentationConfig, rep: Reporter,
                margin_mm: float) -> tuple[sitk.Image, Box | None, str | None]:
    """Stage 1: liver probability on the coarse grid, the ROI box (+ `margin_mm`) on the input grid, and why there is none."""
    log.info("stage 1 (liver): %s at %s mm", liver.manifest.name, liver.manifest.spacing)
    grid_ct, probs = run_model(ct, liver, cfg, rep.sub(0.05, 0.35, "liver"), rep)
    p_liver = channel(probs, liver.manifest.class_index("liver"))
    mask = largest_component(sitk.GetArrayViewFromImage(p_liver) > 0.5)
    pp = cfg.postprocess
    why = implausible_liver(mask, sitk.GetArrayViewFromImage(grid_ct), float(np.prod(grid_ct.GetSpacing())) / 1000,
                            pp.min_liver_ml, pp.liver_median_hu) if mask.any() else "no liver voxel above 0.5"
    rep.lap("stage1_liver")
    if why:
        log.info("no liver: %s", why)
        return p_liver, None, why
    mask_img = sitk.GetImageFromArray(mask.astype(np.uint8))
    mask_img.CopyInformation(p_liver)
    box = liver_roi(mask_img, ct, margin_mm)
    rep.lap("roi")
    return p_liver, box, None


def tumor_stage(ct_roi: sitk.Image, tumor: Model, cfg: SegmentationConfig, rep: Reporter,
                coarse_spacing: tuple[float, float, float]) -> tuple[sitk.Image, sitk.Image | None]:
    """Stage 2 inside the ROI: (tumor probability, liver ∪ tumor probability or None) on its grid."""
    spacing = coarse_spacing if cfg.fast else None
    log.info("stage 2 (tumor): %s at %s mm on a %s-voxel ROI", tumor.manifest.name, spacing or tumor.manifest.spacing, ct_roi.GetSize())
    _, probs = run_model(ct_roi, tumor, cfg, rep.sub(0.4, 0.85, "tumor"), rep, spacing=spacing)
    m = tumor.manifest
    p_tumor = channel(probs, m.class_index("tumor"))
    p_fg = channel(probs, m.class_index("liver")) + p_tumor if "liver" in m.classes.values() else None
    rep.lap("stage2_tumor")
    return p_tumor, p_fg


def to_roi_grid(prob: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """A probability image linearly resampled onto `reference`, as a (z, y, x) array."""
    return sitk.GetArrayFromImage(resample_like(prob, reference, interpolator=sitk.sitkLinear, default=0.0))


def cascade(ct: sitk.Image, liver: Model, tumor: Model | None, cfg: SegmentationConfig, rep: Reporter) -> tuple[np.ndarray, list[str]]:
    """Label map (z, y, x) uint8 on the grid of `ct` (0/1/2), and warnings."""
    labels = np.zeros(ct.GetSize()[::-1], dtype=np.uint8)
    # The ROI margin is the one the tumor model was trained with (stage-2 crops must match training).
    margin = (tumor or liver).manifest.roi_margin_mm
    p_liver, box, why = liver_stage(ct, liver, cfg, rep, margin)
    if box is None:
        rep.lap("resample_back")
        return labels, [f"no liver found in this image ({why}): the label map is empty"]
    ct_roi = box.crop(ct)
    p_fg = to_roi_grid(p_liver, ct_roi)
    p_tumor = np.zeros_like(p_fg)
    if tumor is not None and not cfg.liver_only:
        t_prob, t_fg = tumor_stage(ct_roi, tumor, cfg, rep, liver.manifest.spacing)
        rep.report(0.85, "resampling to the input grid")
        p_tumor = to_roi_grid(t_prob, ct_roi)
        if t_fg is not None:
            p_fg = 0.5 * (p_fg + to_roi_grid(t_fg, ct_roi))
    pp = cfg.postprocess
    labels[box.slices_zyx()] = compose_labels(
        p_fg > 0.5, p_tumor > 0.5, voxel_mm3=float(np.prod(ct.GetSpacing())), min_lesion_mm3=pp.min_lesion_mm3,
        keep_largest_liver=pp.keep_largest_liver, fill_liver_holes=pp.fill_liver_holes,
    )
    rep.lap("resample_back")
    return labels, [] if labels.any() else ["no liver left after post-processing: the label map is empty"]
