"""Register the follow-up CT to the baseline CT around the liver (SimpleITK): rigid, affine, then B-spline.

The transform maps baseline physical points (LPS, mm) to follow-up physical points, ITK's convention for
resampling the follow-up onto the baseline grid. Each stage is scored by the liver Dice and surface distance
between the baseline liver and the registered follow-up liver; the best-scoring stage is kept.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..errors import LiverTumorSegError
from ..io import itk_reason
from ..metrics import assd_mm, dice, hd95_mm
from ..resample import resample_labels, resample_to_spacing
from ..roi import box_on_image, mask_box
from .config import AlignmentThresholds, RegistrationConfig

log = logging.getLogger(__name__)


class RegistrationError(LiverTumorSegError):
    """The follow-up could not be aligned to the baseline (no overlap, diverged, or another liver)."""


@dataclass
class Registration:
    """A follow-up-to-baseline transform and how well it aligned the two livers."""

    transform: sitk.Transform  # baseline LPS point -> follow-up LPS point
    stage: str  # the stage kept: "rigid", "affine" or "deformable"
    liver_dice: float  # baseline liver (in the follow-up's view) vs registered follow-up liver, on the baseline grid
    liver_assd_mm: float  # their average symmetric surface distance
    liver_hd95_mm: float  # their 95th-percentile Hausdorff distance
    stage_dice: dict[str, float] = field(default_factory=dict)  # liver Dice after each stage tried
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        """Flat numbers for the report."""
        return {"stage": self.stage, "liver_dice": round(self.liver_dice, 4), "liver_assd_mm": round(self.liver_assd_mm, 2),
                "liver_hd95_mm": round(self.liver_hd95_mm, 2),
                "stage_dice": {k: round(v, 4) for k, v in self.stage_dice.items()}, "seconds": round(self.seconds, 2)}


def liver_mask(labels: sitk.Image) -> sitk.Image:
    """uint8 mask of the liver including its tumors (label >= 1) of a 0/1/2 label map."""
    return sitk.Cast(labels > 0, sitk.sitkUInt8)


def _liver_region(ct: sitk.Image, liver: sitk.Image, cfg: RegistrationConfig) -> tuple[sitk.Image, sitk.Image]:
    """(clamped float32 CT, liver mask): the liver's bounding box plus the margin, on the working grid."""
    box = box_on_image(mask_box(sitk.GetArrayViewFromImage(liver)), liver, liver, cfg.margin_mm)
    image = sitk.Clamp(sitk.Cast(box.crop(ct), sitk.sitkFloat32), sitk.sitkFloat32, *cfg.clamp_hu)
    spacing = [cfg.working_spacing_mm] * 3
    sigma = [max(0.0, (cfg.working_spacing_mm - s) / 2) for s in image.GetSpacing()]
    if max(sigma) > 0:
        image = sitk.SmoothingRecursiveGaussian(image, sigma)  # anti-aliasing before downsampling
    return resample_to_spacing(image, spacing), resample_labels(box.crop(liver), spacing)


def _metric_mask(liver: sitk.Image, margin_mm: float = 10.0) -> sitk.Image:
    """The liver dilated by `margin_mm`: the metric sees the liver and its outline."""
    radius = [max(1, int(round(margin_mm / s))) for s in liver.GetSpacing()]
    return sitk.BinaryDilate(liver, radius)


def _method(fixed_mask: sitk.Image, cfg: RegistrationConfig, levels: int, samples: int) -> sitk.ImageRegistrationMethod:
    """Mattes MI inside the fixed mask, random sampling, multi-resolution over the last `levels` levels."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=cfg.histogram_bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    inside = max(1, int(np.count_nonzero(sitk.GetArrayViewFromImage(fixed_mask))))
    reg.SetMetricSamplingPercentage(min(1.0, samples / inside), cfg.seed)
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel(list(cfg.shrink_factors[-levels:]))
    reg.SetSmoothingSigmasPerLevel(list(cfg.smoothing_sigmas_mm[-levels:]))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return reg


def _linear(fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image, initial: sitk.Transform, start: sitk.Transform | None,
            cfg: RegistrationConfig) -> sitk.Transform:
    """Optimise `initial` (rigid or affine) after `start` (or none); return the composed transform."""
    reg = _method(mask, cfg, len(cfg.shrink_factors), cfg.samples)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-4, numberOfIterations=cfg.linear_iterations,
                                                 gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    if start is not None:
        reg.SetMovingInitialTransform(start)
    reg.SetInitialTransform(initial, inPlace=True)
    reg.Execute(fixed, moving)
    return initial if start is None else sitk.CompositeTransform([start, initial])


def _deformable(fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image, start: sitk.Transform,
                cfg: RegistrationConfig) -> sitk.Transform:
    """A B-spline refinement inside the liver after `start`; return the composed transform."""
    extent = np.array(fixed.GetSize()) * np.array(fixed.GetSpacing())
    mesh = [max(1, int(round(e / cfg.bspline_spacing_mm))) for e in extent]
    bspline = sitk.BSplineTransformInitializer(fixed, mesh, order=3)
    reg = _method(mask, cfg, 1, cfg.bspline_samples)
    reg.SetOptimizerAsGradientDescentLineSearch(learningRate=1.0, numberOfIterations=cfg.bspline_iterations)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetMovingInitialTransform(start)
    reg.SetInitialTransform(bspline, inPlace=True)
    reg.Execute(fixed, moving)
    return sitk.CompositeTransform([start, bspline])


def warp_labels(labels: sitk.Image, transform: sitk.Transform, reference: sitk.Image) -> sitk.Image:
    """Follow-up `labels` (any integer type) resampled onto the baseline grid `reference` through `transform`."""
    return sitk.Resample(labels, reference, transform, sitk.sitkNearestNeighbor, 0, labels.GetPixelID())


def in_view(follow_grid: sitk.Image, transform: sitk.Transform, reference: sitk.Image) -> np.ndarray:
    """(z, y, x) boolean array on the `reference` (baseline) grid: True where the follow-up CT has voxels."""
    ones = sitk.Image(follow_grid.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(follow_grid)
    return sitk.GetArrayFromImage(warp_labels(ones, transform, reference)) > 0


def _carried(base_liver: sitk.Image, follow_liver: sitk.Image, transform: sitk.Transform) -> tuple[np.ndarray, np.ndarray]:
    """(baseline liver inside the follow-up's field of view, follow-up liver carried onto the baseline grid)."""
    warped = sitk.GetArrayViewFromImage(warp_labels(follow_liver, transform, base_liver)) > 0
    return (sitk.GetArrayViewFromImage(base_liver) > 0) & in_view(follow_liver, transform, base_liver), warped


def liver_dice(base_liver: sitk.Image, follow_liver: sitk.Image, transform: sitk.Transform) -> float:
    """Dice of the baseline liver and the follow-up liver carried onto its grid."""
    return dice(*_carried(base_liver, follow_liver, transform))


def surface_distances(base_liver: sitk.Image, follow_liver: sitk.Image, transform: sitk.Transform) -> tuple[float, float]:
    """(ASSD, HD95) in mm of the baseline liver surface and the registered follow-up liver surface."""
    base, warped = _carried(base_liver, follow_liver, transform)
    return assd_mm(warped, base, base_liver.GetSpacing()), hd95_mm(warped, base, base_liver.GetSpacing())


def _stages(fixed: sitk.Image, moving: sitk.Image, fixed_liver: sitk.Image, moving_liver: sitk.Image,
            cfg: RegistrationConfig):
    """Yield (stage name, transform) as each stage finishes; a stage that fails ends the sequence with a warning."""
    mask = _metric_mask(fixed_liver)
    start = sitk.CenteredTransformInitializer(sitk.Cast(fixed_liver, sitk.sitkFloat32), sitk.Cast(moving_liver, sitk.sitkFloat32),
                                              sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS)
    yield "initial", start
    rigid = _linear(fixed, moving, mask, sitk.Euler3DTransform(start), None, cfg)
    yield "rigid", rigid
    affine = sitk.AffineTransform(3)
    affine.SetCenter(start.GetCenter())
    affine = _linear(fixed, moving, mask, affine, rigid, cfg)
    yield "affine", affine
    if cfg.deformable:
        yield "deformable", _deformable(fixed, moving, mask, affine, cfg)


def register(baseline_ct: sitk.Image, baseline_labels: sitk.Image, followup_ct: sitk.Image, followup_labels: sitk.Image,
             cfg: RegistrationConfig = RegistrationConfig(),
             thresholds: AlignmentThresholds = AlignmentThresholds()) -> Registration:
    """Align the follow-up to the baseline (CT in HU, 0/1/2 label maps on each CT's grid); keep the best stage.

    Raises RegistrationError when no stage reaches `thresholds.fail_liver_dice`.
    """
    t0 = time.perf_counter()
    base_liver, follow_liver = liver_mask(baseline_labels), liver_mask(followup_labels)
    for what, mask in (("baseline", base_liver), ("follow-up", follow_liver)):
        if not sitk.GetArrayViewFromImage(mask).any():
            raise RegistrationError(f"the {what} labels hold no liver: there is nothing to register")
    fixed, fixed_liver = _liver_region(baseline_ct, base_liver, cfg)
    moving, moving_liver = _liver_region(followup_ct, follow_liver, cfg)
    base_box = box_on_image(mask_box(sitk.GetArrayViewFromImage(base_liver)), base_liver, base_liver, 5.0).crop(base_liver)
    scored: dict[str, tuple[sitk.Transform, float]] = {}
    warnings: list[str] = []
    try:
        for stage, transform in _stages(fixed, moving, fixed_liver, moving_liver, cfg):
            scored[stage] = (transform, liver_dice(base_box, follow_liver, transform))
            log.info("registration %s: liver Dice %.3f", stage, scored[stage][1])
    except RuntimeError as exc:  # ITK: e.g. too few samples inside both images, a diverged optimiser
        if not scored:
            raise RegistrationError(f"registration failed: {itk_reason(exc)}") from exc
        warnings.append(f"registration stopped after the {list(scored)[-1]} stage: {itk_reason(exc)}")
    best = max(scored, key=lambda s: scored[s][1])
    transform, d = scored[best]
    if d < thresholds.fail_liver_dice:
        raise RegistrationError(f"registration failed: the livers overlap by Dice {d:.2f} at best after registration "
                                f"(needs {thresholds.fail_liver_dice}); are both CTs of the same patient, with the liver in view?")
    assd, hd95 = surface_distances(base_box, follow_liver, transform)
    warnings += quality_warnings(d, assd, thresholds)
    return Registration(transform, best, d, assd, hd95, {s: v[1] for s, v in scored.items()}, warnings,
                        time.perf_counter() - t0)


def quality_warnings(liver_dice: float, assd: float, thresholds: AlignmentThresholds) -> list[str]:
    """Warnings for a poor alignment: low liver Dice or a large surface distance."""
    if liver_dice >= thresholds.min_liver_dice and not assd > thresholds.max_liver_assd_mm:
        return []
    return [f"poor alignment: liver Dice {liver_dice:.2f} (want >= {thresholds.min_liver_dice}), surface distance "
            f"{assd:.1f} mm (want <= {thresholds.max_liver_assd_mm}); check the matched lesions by eye"]
