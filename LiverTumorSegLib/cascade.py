"""The two-stage cascade: liver at coarse spacing, ROI, tumor inside the ROI, back to the input grid."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .config import SegmentationConfig
from .errors import CancelledError, ModelError
from .modality import LiverGate, liver_gate, threshold_at_half
from .postprocess import compose_labels, implausible_liver, largest_component
from .preprocess import liver_mask_input, liver_roi, model_input, to_model_grid
from .resample import resample_like
from .roi import Box, mask_box
from .runtime import Model
from .sliding_window import predict_probabilities
from .zoom_stage import zoom_tumor_mask

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


def pad_value(manifest, modality: str = "ct") -> float:
    """Normalised value fed to a network outside the image: the manifest's, else that of the modality's background
    (CT: air, -1024 HU)."""
    if manifest.pad_value is not None:
        return float(manifest.pad_value)
    spec = manifest.input_for(modality)
    return float(spec.normalization(np.array([spec.background]))[0])


@dataclass
class StageOutput:
    """A stage's output on its model grid and what its resampled values must exceed to be foreground.

    `image` is float32: a probability (threshold 0.5 after resampling) or, for models whose manifest says
    `output_resampling: binary_any`, a 0/1 mask (any value above the rounding floor counts after resampling).
    """

    image: sitk.Image
    threshold: float = 0.5

    def on(self, reference: sitk.Image) -> np.ndarray:
        """Boolean (z, y, x) foreground on the grid of `reference` (linear resampling, then the threshold)."""
        return to_roi_grid(self.image, reference) > self.threshold


def stage_output(prob: sitk.Image, manifest) -> StageOutput:
    """A model's probability image as that model's manifest says it reaches the input grid."""
    if manifest.output_resampling == "binary_any":
        prob = sitk.Cast(prob > 0.5, sitk.sitkFloat32)
    return StageOutput(prob, manifest.resampled_threshold)


def run_model(ct: sitk.Image, model: Model, cfg: SegmentationConfig, progress: Progress, rep: Reporter,
              liver: StageOutput | None = None) -> tuple[sitk.Image, sitk.Image]:
    """(CT on the model grid, class probabilities of `model` as a vector image on that grid).

    `liver` (the stage-1 liver, any grid) is used by models whose manifest asks for the CT to be masked
    outside the liver.
    """
    m = model.manifest
    grid = to_model_grid(ct, m, cfg.modality)
    x = model_input(grid, m, cfg.modality)
    if m.liver_mask is not None:
        if liver is None:
            raise ModelError(f"model '{m.name}' needs the stage-1 liver to mask its input")
        x = liver_mask_input(x, liver.on(grid), m)
    overlap = cfg.window.overlap if m.tile_overlap is None else m.tile_overlap
    region = body_region(sitk.GetArrayViewFromImage(grid)) if m.window_on_body else None
    inside = x[region] if region else x
    settle = None
    if m.stage == "liver" and cfg.window.settle_liver_on_top_row:
        values = sitk.GetArrayViewFromImage(grid)
        gate = liver_gate(cfg.modality, values, cfg.postprocess)  # as stage 1 gates its final candidate
        settle = liver_settled(m, cfg, float(np.prod(grid.GetSpacing())) / 1000, values[region] if region else values, gate)
    probs = predict_probabilities(
        inside, model.run, m.patch_for(inside.shape, overlap), output_crop=m.output_crop, activation=m.output_activation,
        overlap=overlap, sigma_fraction=cfg.window.gaussian_sigma, pad_value=pad_value(m, cfg.modality),
        cancel=rep.cancel, progress=progress,
        mirror_axes=cfg.window.mirror_tumor if m.stage == "tumor" else cfg.window.mirror_liver, settle=settle,
    )
    if region:  # background outside the body box
        full = np.zeros((probs.shape[0],) + x.shape, dtype=np.float32)
        full[0] = 1.0
        full[(slice(None),) + region] = probs
        probs = full
    out = sitk.GetImageFromArray(np.moveaxis(probs, 0, -1), isVector=True)
    out.CopyInformation(grid)
    return grid, out


def liver_settled(manifest, cfg: SegmentationConfig, voxel_ml: float, values: np.ndarray,
                  gate: LiverGate) -> Callable[[np.ndarray, int], bool]:
    """A `settle` test for the liver network's sliding window over `values` (the image it runs on, model grid): True
    when the probabilities so far hold a whole liver (the largest candidate above the modality's threshold, passing
    `gate` and the manifest's midline test) clear of the lower edge `z_low` of the windows run (by
    `settle_band_voxels`), so that the windows below could not change it."""
    channel_index = manifest.class_index("liver")
    threshold = manifest.input_for(cfg.modality).liver_threshold

    def settled(probs: np.ndarray, z_low: int) -> bool:
        candidate = largest_component(threshold_at_half(probs[channel_index], threshold) > 0.5)
        zs = np.flatnonzero(candidate.any(axis=(1, 2)))
        whole = zs.size > 0 and implausible_liver(candidate, values, voxel_ml, gate.min_ml, gate.median_range,
                                                  manifest.min_right_fraction, gate.body, gate.unit) is None
        done = bool(whole and zs[0] >= z_low + cfg.window.settle_band_voxels)
        log.info("liver window row above z=%d: %s", z_low, "holds the whole liver, the rows below are skipped" if done
                 else "no whole liver clear of its lower edge, every row runs")
        return done

    return settled


def body_region(hu: np.ndarray, body_hu: float = -300.0, margin: int = 2) -> tuple[slice, slice, slice] | None:
    """(z, y, x) slices of the bounding box of the body (largest component above `body_hu`) plus `margin` voxels, or
    None (the whole image) when nothing is above it. A network run on this box sees the same input whatever the
    field of view around the body (beyond the box it sees its pad value, as beyond any image)."""
    body = largest_component(hu > body_hu)
    box = mask_box(body)
    if box is None:
        return None
    return tuple(slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(box.slices_zyx(), hu.shape))


def channel(probs: sitk.Image, index: int) -> sitk.Image:
    """One probability channel of a vector image."""
    return sitk.VectorIndexSelectionCast(probs, index, sitk.sitkFloat32)


def liver_candidate(p_liver: np.ndarray, opening_voxels: int) -> np.ndarray:
    """Largest component of `p_liver > 0.5`, after an opening by `opening_voxels` (18-connected steps) if > 0."""
    mask = p_liver > 0.5
    if opening_voxels <= 0 or not mask.any():
        return largest_component(mask)
    structure = ndimage.iterate_structure(ndimage.generate_binary_structure(3, 2), opening_voxels)
    core = largest_component(ndimage.binary_erosion(mask, structure=structure))
    return ndimage.binary_dilation(core, structure=structure) & mask


def liver_stage(ct: sitk.Image, liver: Model, cfg: SegmentationConfig, rep: Reporter,
                margin_mm: float) -> tuple[StageOutput, Box | None, str | None]:
    """Stage 1: the liver on the coarse grid (probability zero outside the kept candidate, or the candidate's
    mask, per the manifest's `output_resampling`), the ROI box (+ `margin_mm`) on the input grid, and why there
    is none."""
    log.info("stage 1 (liver): %s at %s mm", liver.manifest.name, liver.manifest.spacing)
    grid_ct, probs = run_model(ct, liver, cfg, rep.sub(0.05, 0.35, "liver"), rep)
    liver.release_memory()  # measured: the liver window's buffers (~2.5 GB) under stage 2's took the peak to 4.1 GB
    p_liver = channel(probs, liver.manifest.class_index("liver"))
    spec = liver.manifest.input_for(cfg.modality)
    p = threshold_at_half(sitk.GetArrayFromImage(p_liver), spec.liver_threshold)
    opening = liver.manifest.liver_opening_voxels if spec.liver_opening_voxels is None else spec.liver_opening_voxels
    mask = liver_candidate(p, opening)
    values = sitk.GetArrayViewFromImage(grid_ct)
    gate = liver_gate(cfg.modality, values, cfg.postprocess)
    why = implausible_liver(mask, values, float(np.prod(grid_ct.GetSpacing())) / 1000, gate.min_ml, gate.median_range,
                            liver.manifest.min_right_fraction, gate.body, gate.unit) if mask.any() else "no liver voxel above 0.5"
    rep.lap("stage1_liver")
    if why:
        log.info("no liver: %s", why)
        return StageOutput(p_liver), None, why
    kept = sitk.GetImageFromArray(np.where(mask, p, 0.0).astype(np.float32))
    kept.CopyInformation(p_liver)
    out = stage_output(kept, liver.manifest)
    mask_img = sitk.GetImageFromArray(mask.astype(np.uint8))
    mask_img.CopyInformation(p_liver)
    box = liver_roi(mask_img, ct, margin_mm + liver_growth_mm(liver.manifest))
    rep.lap("roi")
    return out, box, None


def liver_growth_mm(manifest) -> float:
    """How far (mm) the liver can reach beyond its model-grid mask on the input grid: one model voxel for
    `binary_any`, nothing for probabilities."""
    return max(manifest.spacing) if manifest.output_resampling == "binary_any" else 0.0


def tumor_stage(ct_roi: sitk.Image, tumor: Model, cfg: SegmentationConfig, rep: Reporter,
                liver: StageOutput) -> tuple[StageOutput, sitk.Image | None]:
    """Stage 2 inside the ROI: (tumor output, liver ∪ tumor probability or None) on its grid."""
    m = tumor.manifest
    log.info("stage 2 (tumor): %s at %s mm on a %s-voxel ROI", m.name, m.spacing, ct_roi.GetSize())
    _, probs = run_model(ct_roi, tumor, cfg, rep.sub(0.4, 0.85, "tumor"), rep, liver=liver)
    tumor.release_memory()
    p_tumor = channel(probs, m.class_index("tumor"))
    p_fg = channel(probs, m.class_index("liver")) + p_tumor if "liver" in m.classes.values() else None
    rep.lap("stage2_tumor")
    return stage_output(p_tumor, m), p_fg


def zoomed_tumor_stage(ct: sitk.Image, box: Box, liver: np.ndarray, tumor: Model, cfg: SegmentationConfig,
                       rep: Reporter) -> np.ndarray:
    """Stage 2 as pyliverlesionseg runs it (`zoom_stage.py`), given the liver on the ROI `box` of `ct` (the mask the
    label map uses): the tumor mask on that box."""
    m = tumor.manifest
    log.info("stage 2 (tumor): %s at %s mm, on pyliverlesionseg's zoom3d grid and tiling", m.name, m.spacing)
    sub = rep.sub(0.4, 0.85, "tumor")
    mask = zoom_tumor_mask(ct, box, liver, tumor, modality=cfg.modality, mirror_axes=cfg.window.mirror_tumor,
                           cancel=rep.cancel, progress=sub)
    tumor.release_memory()
    rep.lap("stage2_tumor")
    return mask


def to_roi_grid(prob: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """A probability image linearly resampled onto `reference`, as a (z, y, x) array."""
    return sitk.GetArrayFromImage(resample_like(prob, reference, interpolator=sitk.sitkLinear, default=0.0))


def given_liver_stage(ct: sitk.Image, liver_mask: sitk.Image, margin_mm: float) -> tuple[StageOutput, Box | None, str | None]:
    """Stage 1 replaced by a liver mask on the input grid (e.g. a corrected segmentation): as `liver_stage`."""
    mask = sitk.Cast(liver_mask > 0, sitk.sitkUInt8)
    mask.CopyInformation(ct)
    out = StageOutput(sitk.Cast(mask, sitk.sitkFloat32))
    if not sitk.GetArrayViewFromImage(mask).any():
        return out, None, "the given liver mask is empty"
    return out, liver_roi(mask, ct, margin_mm), None


def cascade(ct: sitk.Image, liver: Model | None, tumor: Model | None, cfg: SegmentationConfig, rep: Reporter,
            liver_mask: sitk.Image | None = None) -> tuple[np.ndarray, list[str]]:
    """Label map (z, y, x) uint8 on the grid of `ct` (0/1/2), and warnings.

    With `liver_mask` (input grid, non-zero = liver) stage 1 is skipped and the tumor stage runs inside it.
    """
    labels = np.zeros(ct.GetSize()[::-1], dtype=np.uint8)
    # The ROI margin is the one the tumor model was trained with (stage-2 crops must match training).
    margin = (tumor or liver).manifest.roi_margin_mm
    if liver_mask is not None:
        liver_out, box, why = given_liver_stage(ct, liver_mask, margin)
        rep.lap("stage1_liver")
    else:
        liver_out, box, why = liver_stage(ct, liver, cfg, rep, margin)
    if box is None:
        rep.lap("resample_back")
        return labels, [f"no liver found in this image ({why}): the label map is empty"]
    ct_roi = box.crop(ct)
    fg = liver_out.on(ct_roi)
    tumor_mask = np.zeros_like(fg)
    if tumor is not None and not cfg.liver_only and tumor.manifest.resampling == "zoom3d":
        tumor_mask = zoomed_tumor_stage(ct, box, fg, tumor, cfg, rep)
    elif tumor is not None and not cfg.liver_only:
        t_out, t_fg = tumor_stage(ct_roi, tumor, cfg, rep, liver_out)
        rep.report(0.85, "resampling to the input grid")
        tumor_mask = t_out.on(ct_roi)
        if t_fg is not None:  # a tumor model that also outputs liver: average the two livers' probabilities
            fg = 0.5 * (to_roi_grid(liver_out.image, ct_roi) + to_roi_grid(t_fg, ct_roi)) > 0.5
    pp = cfg.postprocess
    labels[box.slices_zyx()] = compose_labels(
        fg, tumor_mask, voxel_mm3=float(np.prod(ct.GetSpacing())), min_lesion_mm3=pp.min_lesion_mm3,
        keep_largest_liver=pp.keep_largest_liver, fill_liver_holes=pp.fill_liver_holes,
    )
    rep.lap("resample_back")
    return labels, [] if labels.any() else ["no liver left after post-processing: the label map is empty"]
