"""Input checks: refuse images that cannot be segmented, with a message saying why."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .config import InputCheckConfig
from .errors import InvalidInputError, NotCTError
from .modality import MR, mr_plausibility_warning


def check_shape(image: sitk.Image, cfg: InputCheckConfig) -> None:
    """Refuse non-3-D, multi-channel, tiny or huge images."""
    if image.GetDimension() != 3:
        raise InvalidInputError(
            f"expected a 3-D CT volume, got a {image.GetDimension()}-D image of size {image.GetSize()}"
            + (" (a single slice: load the whole series)" if image.GetDimension() == 2 else "")
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidInputError(
            f"expected a scalar (single-channel) CT, got {image.GetNumberOfComponentsPerPixel()} components per voxel"
        )
    size = np.array(image.GetSize())
    extent = size * np.array(image.GetSpacing())
    if size.min() < cfg.min_voxels_per_axis or extent.min() < cfg.min_extent_mm:
        raise InvalidInputError(
            f"volume too small to contain a liver: {tuple(int(s) for s in size)} voxels, "
            f"{tuple(round(float(e), 1) for e in extent)} mm (need ≥ {cfg.min_voxels_per_axis} voxels and ≥ {cfg.min_extent_mm} mm per axis)"
        )
    if size.prod() > cfg.max_voxels:
        raise InvalidInputError(f"volume too large: {int(size.prod()):,} voxels (limit {cfg.max_voxels:,})")


def check_values(hu: np.ndarray) -> None:
    """Refuse NaN or infinite voxels."""
    if np.issubdtype(hu.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(hu)))
        if bad:
            raise InvalidInputError(f"the image has {bad:,} NaN or infinite voxels; fix or mask them before segmenting")


def ct_likeness_problem(hu: np.ndarray) -> str | None:
    """Why these intensities do not look like CT in HU, or None when they do."""
    sample = hu.ravel()[:: max(1, hu.size // 2_000_000)].astype(np.float32)
    p1, p99 = np.percentile(sample, [1, 99])
    if -50 <= p1 <= 50 and np.mean((sample > 950) & (sample < 1250)) > 0.15:
        return "intensities look like CT stored without its rescale intercept (air near 0 instead of -1000 HU)"
    if p1 > -700:
        return (f"no air around -1000 HU (1st percentile {p1:.0f}); the image does not look like CT in "
                "Hounsfield units (an MR or a normalised image?)")
    if sample.min() < -4000 or p99 > 5000:
        return f"intensity range {sample.min():.0f}..{p99:.0f} is outside the Hounsfield scale"
    return None


def check_ct(image: sitk.Image, hu: np.ndarray, cfg: InputCheckConfig) -> list[str]:
    """Run every input check; return warnings for what `force` let through."""
    check_shape(image, cfg)
    check_values(hu)
    problem = ct_likeness_problem(hu)
    if problem and not cfg.force:
        raise NotCTError(f"this does not look like a CT: {problem}. If it is an MR, pass modality='mr'; "
                         "use force=True to segment anyway.")
    return [f"forced: {problem}"] if problem else []


def check_input(image: sitk.Image, values: np.ndarray, cfg: InputCheckConfig, modality: str) -> list[str]:
    """Every input check for `modality`: CT as `check_ct`; an MR gets the shape and value checks and a warning
    when it looks like CT in HU (the HU checks do not apply to MR). Returns warnings."""
    if modality != MR:
        return check_ct(image, values, cfg)
    check_shape(image, cfg)
    check_values(values)
    warning = mr_plausibility_warning(values)
    return [warning] if warning else []
