"""Imaging modality of an input (CT or MR): where it comes from, how a network takes it, and plausibility checks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .errors import InvalidInputError
from .windowing import Normalization, RangeNormalization, normalization_from_dict

CT, MR = "ct", "mr"
MODALITIES = (CT, MR)
DICOM_MODALITY_TAG = "0008|0060"  # DICOM (0008,0060) Modality: "CT", "MR", ...
#: Intensity outside the image when a volume is resampled: air for CT (HU), no signal for MR.
BACKGROUND = {CT: -1024.0, MR: 0.0}
#: Liver-plausibility gate of stage 1 for MR, where intensities have no fixed scale: the body is what is brighter
#: than this fraction of the image's 99th percentile, and a liver's median must lie in the body.
MR_BODY_FRACTION = 0.1
#: Said in every MR result and panel while the lesion network takes CT only.
MR_LIVER_ONLY = ("MR: liver only. The lesion network was not validated on MR (no MR with lesion labels is available), "
                 "so no lesions were segmented: a lesion-free label map is not evidence of a lesion-free liver")


@dataclass(frozen=True)
class ModalityInput:
    """How a network takes one modality: its input normalisation, the intensity outside the image (CT: -1024 HU,
    MR: 0), whether the (MR) bias field is removed with N4 before resampling, and (liver networks) the probability
    threshold of the stage-1 liver and its opening in voxels (None: the manifest's `liver_opening_voxels`)."""

    normalization: Normalization | RangeNormalization
    background: float
    n4_bias_field: bool = False
    liver_threshold: float = 0.5
    liver_opening_voxels: int | None = None

    @classmethod
    def from_manifest(cls, modality: str, entry: dict, default: Normalization) -> "ModalityInput":
        """From a manifest's `modalities[modality]` entry (its `normalization`, else the manifest's `default`)."""
        norm = normalization_from_dict(entry["normalization"]) if "normalization" in entry else default
        opening = entry.get("liver_opening_voxels")
        return cls(norm, float(entry.get("background", BACKGROUND[modality])), bool(entry.get("n4_bias_field", False)),
                   float(entry.get("liver_threshold", 0.5)), None if opening is None else int(opening))


def threshold_at_half(p: np.ndarray, threshold: float) -> np.ndarray:
    """Probabilities mapped piecewise linearly so that `threshold` lands on 0.5 (0 and 1 stay): the cascade
    cuts at 0.5, so a network whose liver is best cut at `threshold` is cut there."""
    if threshold == 0.5:
        return p
    p = np.asarray(p, dtype=np.float32)
    return np.where(p < threshold, 0.5 * p / threshold, 0.5 + 0.5 * (p - threshold) / (1.0 - threshold)).astype(np.float32)


def checked_modality(value: str) -> str:
    """`value` as one of MODALITIES (case-insensitive); InvalidInputError otherwise."""
    modality = str(value).strip().lower()
    if modality not in MODALITIES:
        raise InvalidInputError(f"unknown modality '{value}': use one of {', '.join(MODALITIES)}")
    return modality


def dicom_modality(image: sitk.Image) -> str | None:
    """The DICOM Modality tag an image was read with ("CT", "MR", ...), or None (files without DICOM headers)."""
    if DICOM_MODALITY_TAG in image.GetMetaDataKeys():
        return image.GetMetaData(DICOM_MODALITY_TAG).strip().upper() or None
    return None


def resolve_modality(requested: str | None, image: sitk.Image) -> tuple[str, list[str]]:
    """(modality to segment as, warnings): the one asked for, else the DICOM Modality tag's (MR -> mr), else CT."""
    tag = dicom_modality(image)
    if requested is None:
        return (MR if tag == "MR" else CT), []
    modality = checked_modality(requested)
    if tag in ("CT", "MR") and tag.lower() != modality:
        return modality, [f"the DICOM Modality tag says {tag} but modality '{modality}' was asked for: "
                          f"segmented as {modality.upper()}"]
    return modality, []


def looks_like_ct_in_hu(values: np.ndarray) -> bool:
    """True when intensities look like CT in HU: air around -1000 (1st percentile below -700)."""
    sample = values.ravel()[:: max(1, values.size // 2_000_000)].astype(np.float32)
    return bool(np.percentile(sample, 1) < -700)


def mr_plausibility_warning(values: np.ndarray) -> str | None:
    """Why an image given as MR looks like CT in HU, or None when it may be an MR (magnitude MR is never -1000)."""
    if looks_like_ct_in_hu(values):
        return ("this image was given as MR but looks like CT in Hounsfield units (air around -1000); "
                "it was segmented as MR as asked; if it is a CT, pass modality='ct'")
    return None


def mr_body_threshold(values: np.ndarray) -> float:
    """Intensity above which an MR voxel is body, not background: MR_BODY_FRACTION of the 99th percentile."""
    sample = values.ravel()[:: max(1, values.size // 2_000_000)].astype(np.float32)
    return MR_BODY_FRACTION * float(np.percentile(sample, 99))


def n4_corrected(image: sitk.Image, shrink: int = 2) -> sitk.Image:
    """`image` (float32 MR) divided by its N4 bias field, estimated on a `shrink`-times coarser in-plane grid
    inside an Otsu body mask (SimpleITK's N4BiasFieldCorrection)."""
    img = sitk.Cast(image, sitk.sitkFloat32)
    small = sitk.Shrink(img, [shrink, shrink, 1])
    mask = sitk.OtsuThreshold(small, 0, 1, 200)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([50, 50, 30])
    n4.Execute(small + 1.0, mask)  # +1: N4 takes logs; an MR background of exactly 0 would be -inf
    log_field = n4.GetLogBiasFieldAsImage(img)
    return sitk.Cast(img / sitk.Exp(log_field), sitk.sitkFloat32)


@dataclass(frozen=True)
class LiverGate:
    """Stage-1 liver plausibility in one modality's intensities: smallest volume (ml), range of the candidate's median,
    the body threshold for the midline test, and the intensities' unit."""

    min_ml: float
    median_range: tuple[float, float]
    body: float
    unit: str


def liver_gate(modality: str, values: np.ndarray, post) -> LiverGate:
    """The liver gate for `modality` on an image (any shape): CT uses the HU limits of `post` (PostprocessConfig);
    MR, without a fixed scale, asks that the candidate's median lie in the body (above `mr_body_threshold`)."""
    if modality == MR:
        body = mr_body_threshold(values)
        return LiverGate(post.min_liver_ml, (body, float("inf")), body, "(MR intensity)")
    return LiverGate(post.min_liver_ml, tuple(post.liver_median_hu), -500.0, "HU")
