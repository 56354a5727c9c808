"""Model-input preparation shared by inference and Training, so both see identical inputs."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .manifest import ModelManifest
from .modality import CT, n4_corrected
from .resample import resample_ct, resample_labels
from .roi import Box, box_on_image, mask_box


#: Bumped whenever the functions below change what a model sees (Training keys its cache on it).
PREPROCESSING_VERSION = 2


def canonical(image: sitk.Image) -> sitk.Image:
    """`image` with axes permuted/flipped to the nearest LPS order, so models never see mirrored anatomy."""
    return sitk.DICOMOrient(image, "LPS")


def to_model_grid(ct: sitk.Image, manifest: ModelManifest, modality: str = CT) -> sitk.Image:
    """CT (HU) or MR in canonical LPS axis order, resampled to the model's spacing, float32.

    With a `median_prefilter` in the manifest, the image is first resampled to that spacing and median
    filtered there (pyliverlesionseg's liver network was trained on CTs smoothed so). The manifest's entry
    for `modality` gives the intensity outside the image and whether an MR's bias field is removed first.
    """
    spec = manifest.input_for(modality)
    image = canonical(ct)
    if spec.n4_bias_field:
        image = n4_corrected(image)
    pre = manifest.median_prefilter
    if pre:
        image = sitk.Median(resample_ct(image, pre["spacing"], spec.background), [int(pre["size"]) // 2] * 3)
    return resample_ct(image, manifest.spacing, spec.background)


def dilated(mask: np.ndarray, steps: int) -> np.ndarray:
    """`mask` dilated by `steps` 18-connected steps (one dilation by the iterated structure, as pyliverlesionseg)."""
    if steps <= 0:
        return mask
    return ndimage.binary_dilation(mask, structure=ndimage.iterate_structure(ndimage.generate_binary_structure(3, 2), steps))


def liver_mask_input(x: np.ndarray, liver: np.ndarray, manifest: ModelManifest) -> np.ndarray:
    """Normalised input `x` with `fill_value` outside `liver` dilated by the manifest's `liver_mask` voxels."""
    spec = manifest.liver_mask
    liver = dilated(liver, int(spec.get("dilation_voxels", 0)))
    out = np.array(x, dtype=np.float32, copy=True)
    out[~liver] = np.float32(spec["fill_value"])
    return out


def model_input(ct_on_model_grid: sitk.Image, manifest: ModelManifest, modality: str = CT) -> np.ndarray:
    """Normalised (z, y, x) float32 array for the network, from CT (or MR) already on the model grid."""
    return manifest.input_for(modality).normalization(sitk.GetArrayViewFromImage(ct_on_model_grid))


def liver_roi(liver_mask: sitk.Image, ct: sitk.Image, margin_mm: float) -> Box | None:
    """Box on `ct` covering the non-zero voxels of `liver_mask` plus `margin_mm`; None if empty."""
    box = mask_box(sitk.GetArrayViewFromImage(liver_mask))
    if box is None:
        return None
    return box_on_image(box, liver_mask, ct, margin_mm)


def stage2_case(ct: sitk.Image, labels: sitk.Image, manifest: ModelManifest) -> tuple[sitk.Image, sitk.Image] | None:
    """(CT, labels) cropped to the labelled liver ROI and resampled to the tumor model's spacing.

    Used by Training to build stage-2 samples exactly as the cascade crops them at inference.
    """
    box = liver_roi(labels > 0, ct, manifest.roi_margin_mm)
    if box is None:
        return None
    ct_roi = to_model_grid(box.crop(ct), manifest)
    return ct_roi, resample_labels(box.crop(labels), ct_roi)
