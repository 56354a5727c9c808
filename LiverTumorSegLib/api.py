"""Public entry points: `segment` an image in memory, `segment_file` a path."""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable, Union

import numpy as np
import SimpleITK as sitk

from .cascade import Reporter, cascade
from .config import MODEL_SET_ENV, TTA_MIRROR_AXES, RuntimeConfig, SegmentationConfig
from .config import models_dir as resolve_models_dir
from .geometry import Geometry, Volume
from .errors import InvalidInputError
from .io import read_image
from .lesions import measure_lesions, organ_volumes_ml, slices_with_tumor
from .model_sets import SETS_FILE, ModelSet, resolve_model_set
from .result import SegmentationResult
from .runtime import Model, load_model_file
from .modality import MR, MR_LIVER_ONLY, resolve_modality
from .validation import check_input

log = logging.getLogger(__name__)
ImageLike = Union[sitk.Image, Volume, str, Path]  # typing.Union: `X | Y` fails at import on Python 3.9 (Slicer 5.8)


def make_config(*, device: str = "auto", liver_only: bool = False,
                min_lesion_mm3: float | None = None, threads: int | None = None, force: bool = False,
                models_dir: str | Path | None = None, model_set: str | None = None,
                cpu_engine: str | None = None, tta: bool = False,
                base: SegmentationConfig | None = None) -> SegmentationConfig:
    """A SegmentationConfig from the keyword options of `segment` (over `base` when given)."""
    cfg = base or SegmentationConfig()
    post = cfg.postprocess if min_lesion_mm3 is None else replace(cfg.postprocess, min_lesion_mm3=float(min_lesion_mm3))
    runtime = RuntimeConfig(device=device, threads=threads, cpu_engine=cpu_engine or cfg.runtime.cpu_engine)
    window = replace(cfg.window, mirror_tumor=TTA_MIRROR_AXES) if tta else cfg.window
    return replace(cfg, runtime=runtime, postprocess=post, window=window,
                   checks=replace(cfg.checks, force=force), liver_only=liver_only,
                   models_dir=Path(models_dir) if models_dir else cfg.models_dir,
                   model_set=model_set or cfg.model_set)


def selected_model_set(cfg: SegmentationConfig) -> ModelSet:
    """The model set a config asks for: `model_set`, else $LIVERTUMORSEG_MODEL_SET, else the models folder's default."""
    folder = resolve_models_dir(cfg.models_dir)
    name = cfg.model_set or os.environ.get(MODEL_SET_ENV) or None
    if cfg.model_set is None and not (folder / SETS_FILE).is_file():
        name = None  # a single-set custom folder: there is only one set to run
    return resolve_model_set(folder, name)


def load_models(cfg: SegmentationConfig) -> tuple[ModelSet, Model, Model | None]:
    """(set, liver model, tumor model or None with liver_only / a liver-only set), checksums verified."""
    mset = selected_model_set(cfg)
    liver = load_model_file(mset.liver, cfg.runtime, "liver")
    tumor = None if cfg.liver_only or mset.tumor is None else load_model_file(mset.tumor, cfg.runtime, "tumor")
    return mset, liver, tumor


def _as_sitk(image: ImageLike) -> sitk.Image:
    """A SimpleITK image from any accepted input form."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Volume):
        return image.to_sitk()
    return image


def segment(image: ImageLike, *, device: str = "auto", liver_only: bool = False,
            min_lesion_mm3: float | None = None, threads: int | None = None, force: bool = False,
            models_dir: str | Path | None = None, model_set: str | None = None, cpu_engine: str | None = None,
            tta: bool = False, config: SegmentationConfig | None = None,
            progress: Callable[[float, str], None] | None = None,
            cancel: threading.Event | None = None, liver_mask: ImageLike | None = None,
            modality: str | None = None) -> SegmentationResult:
    """Liver (1) and tumor (2) label map of a CT in HU (or an MR), on the exact input grid, with lesion measurements.

    `image` is a SimpleITK image, a Volume ((z, y, x) array + geometry) or a path (file or DICOM folder).
    `progress(fraction, message)` is called through every stage; setting `cancel` stops the run
    within about a second with CancelledError. `liver_mask` (same grid as the image, non-zero = liver,
    e.g. a corrected liver) replaces the liver stage: only tumors are segmented, inside it. Raises
    InvalidInputError / NotCTError for unusable input and ModelError for missing or tampered models.
    `modality` "ct" | "mr" (None: the DICOM Modality tag of a DICOM series, else CT, or `config.modality`); an
    MR is segmented by the networks whose manifests accept MR: with the shipped models, the liver only.
    """
    cfg = make_config(device=device, liver_only=liver_only, min_lesion_mm3=min_lesion_mm3,
                      threads=threads, force=force, models_dir=models_dir, model_set=model_set,
                      cpu_engine=cpu_engine, tta=tta, base=config)
    rep = Reporter(progress, cancel)
    rep.report(0.0, "reading")
    ct = _as_sitk(image)
    geometry = Geometry.of(ct) if ct.GetDimension() == 3 else None
    hu = sitk.GetArrayViewFromImage(ct)
    cfg, warnings = _with_modality(cfg, modality, ct)
    warnings += check_input(ct, hu, cfg.checks, cfg.modality)
    rep.lap("read_and_check")
    rep.report(0.03, "loading models")
    mset, liver, tumor = load_models(cfg)
    liver.manifest.input_for(cfg.modality)  # ModelError now when the liver network does not take this modality
    if tumor is not None and not tumor.manifest.accepts(cfg.modality):
        tumor = None  # e.g. a CT-only lesion network given an MR
    if cfg.modality == MR and tumor is None:
        warnings.append(MR_LIVER_ONLY)
    rep.lap("load_models")
    given = _given_liver(liver_mask, ct)
    labels, more = cascade(ct, liver, tumor, cfg, rep, liver_mask=given)
    rep.report(0.95, "measuring lesions")
    result = _result(labels, hu, geometry, warnings + more, liver.device)
    result.model_set = mset.name
    result.modality = cfg.modality
    ran = (liver, tumor if "stage2_tumor" in rep.timings else None)  # no liver, or MR: the tumor stage never ran
    result.models = {m.manifest.stage: {**model_identity(m.manifest), "model_set": mset.name, "engine": m.engine}
                     for m in ran if m is not None}
    rep.lap("lesions")
    result.timings = dict(rep.timings)
    rep.report(1.0, "done")
    for w in result.warnings:  # returned in result.warnings, which callers show (the CLI once per case)
        log.info("warning: %s", w)
    log.info("segmented %s voxels in %.2f s: %s", "x".join(map(str, ct.GetSize())), sum(result.timings.values()), result.summary())
    return result


def _with_modality(cfg: SegmentationConfig, modality: str | None, image: sitk.Image) -> tuple[SegmentationConfig, list[str]]:
    """`cfg` set to the modality to segment as (asked for, else the DICOM tag's, else `cfg.modality`) and warnings."""
    chosen, warnings = resolve_modality(modality, image)
    if modality is None and chosen != MR:
        chosen = cfg.modality
    return replace(cfg, modality=chosen), warnings


def model_identity(manifest) -> dict[str, str]:
    """Name and version of a model (and its model set, where the manifest names one) for reports and DICOM."""
    identity = {"name": manifest.name, "version": manifest.version}
    if getattr(manifest, "model_set", ""):
        identity["model_set"] = str(manifest.model_set)
    return identity


def _result(labels: np.ndarray, hu: np.ndarray, geometry: Geometry, warnings: list[str], device: str) -> SegmentationResult:
    """Assemble a SegmentationResult with lesion analysis."""
    liver_ml, tumor_ml = organ_volumes_ml(labels, geometry)
    result = SegmentationResult(
        labels=labels, geometry=geometry, lesions=measure_lesions(labels, hu, geometry),
        liver_volume_ml=liver_ml, tumor_volume_ml=tumor_ml, slice_has_tumor=slices_with_tumor(labels),
        warnings=warnings, device=device,
    )
    cut = result.liver_cut_off()
    if cut:
        result.warnings.append(f"the liver touches the {' and the '.join(cut)} of the image: it may run off the scan, "
                               f"so its volume ({liver_ml:.1f} ml) is a lower bound")
    return result


def _given_liver(liver_mask: ImageLike | None, ct: sitk.Image) -> sitk.Image | None:
    """A given liver mask as an image on the CT's grid, or None; InvalidInputError on another grid."""
    if liver_mask is None:
        return None
    mask = _as_sitk(liver_mask) if not isinstance(liver_mask, np.ndarray) else sitk.GetImageFromArray(liver_mask.astype(np.uint8))
    if mask.GetSize() != ct.GetSize():
        raise InvalidInputError(f"the liver mask has {mask.GetSize()} voxels, the CT {ct.GetSize()}: they must share one grid")
    if isinstance(liver_mask, np.ndarray):
        mask.CopyInformation(ct)
    elif not (np.allclose(mask.GetSpacing(), ct.GetSpacing(), rtol=1e-4) and np.allclose(mask.GetOrigin(), ct.GetOrigin(), atol=1e-3)
              and np.allclose(mask.GetDirection(), ct.GetDirection(), atol=1e-5)):
        raise InvalidInputError("the liver mask and the CT have different spacing, origin or direction")
    return mask


def segment_file(path: str | Path, **kwargs) -> SegmentationResult:
    """`segment` for a CT file or DICOM series folder (same keyword options)."""
    return segment(read_image(path), **kwargs)
