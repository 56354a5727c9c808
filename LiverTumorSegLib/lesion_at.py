"""One lesion around a point a reader placed (Slicer's "Add lesion"): the lesion network on a small box.

The tumor stage of the cascade runs on a box of +-`half_box_mm` around the point, inside the given liver
(as `segment(..., liver_mask=...)` does), and its probability is thresholded at `threshold`, lower than
the cascade's 0.5, because the point says a lesion is there. The connected component (26-connected) at
the point, or the nearest one within `snap_mm`, is the lesion. Arrays are (z, y, x); points are (x, y, z)
voxel indices of the image; distances in mm.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .api import ImageLike, _as_sitk, _given_liver, make_config, selected_model_set
from .cascade import Reporter, given_liver_stage, to_roi_grid, tumor_stage
from .errors import InvalidInputError, ModelError
from .roi import Box
from .runtime import load_model_file


@dataclass(frozen=True)
class LesionAtConfig:
    """How a lesion is grown around a point: box half-size (mm), probability threshold, snap distance (mm)."""

    half_box_mm: float = 32.0
    threshold: float = 0.15  # measured best of 0.5 / 0.3 / 0.15 on lits117_roi (Testing/slicer/measure_lesion_at.py)
    snap_mm: float = 5.0


def point_box(image: sitk.Image, point_xyz: tuple[int, int, int], half_mm: float) -> Box:
    """The index box of +-`half_mm` around voxel `point_xyz` (x, y, z), clipped to the image."""
    size = image.GetSize()
    if not all(0 <= int(p) < s for p, s in zip(point_xyz, size)):
        raise InvalidInputError(f"the point {tuple(point_xyz)} is outside the image ({size[0]} x {size[1]} x {size[2]} voxels)")
    half = [max(1, math.ceil(half_mm / sp)) for sp in image.GetSpacing()]
    start = tuple(max(0, int(p) - h) for p, h in zip(point_xyz, half))
    stop = tuple(min(s, int(p) + h + 1) for p, h, s in zip(point_xyz, half, size))
    return Box(start, stop)


def component_at(candidate: np.ndarray, point_zyx: tuple[int, int, int], spacing_zyx, snap_mm: float) -> np.ndarray:
    """The 26-connected component of `candidate` holding the point, else the nearest within `snap_mm` (or none)."""
    labels, count = ndimage.label(candidate, structure=np.ones((3, 3, 3), bool))
    if count == 0:
        return np.zeros_like(candidate, dtype=bool)
    label = labels[point_zyx]
    if label == 0:
        distance, nearest = ndimage.distance_transform_edt(labels == 0, sampling=spacing_zyx, return_indices=True)
        if distance[point_zyx] > snap_mm:
            return np.zeros_like(candidate, dtype=bool)
        label = labels[tuple(int(axis[point_zyx]) for axis in nearest)]
    return labels == label


def lesion_at(image: ImageLike, liver_mask: np.ndarray, point_xyz: tuple[int, int, int], *,
              config: LesionAtConfig = LesionAtConfig(), device: str = "auto", threads: int | None = None,
              models_dir=None, model_set: str | None = None, progress=None, cancel=None) -> np.ndarray:
    """(z, y, x) bool mask on the image grid of the lesion at voxel `point_xyz` (x, y, z); empty if none is found.

    `liver_mask` (z, y, x, non-zero = liver, on the image grid) is the liver the lesion network looks in.
    """
    ct = _as_sitk(image)
    mask = _given_liver(np.asarray(liver_mask), ct)
    cfg = make_config(device=device, threads=threads, models_dir=models_dir, model_set=model_set)
    mset = selected_model_set(cfg)
    if mset.tumor is None:
        raise ModelError(f"model set '{mset.name}' has no tumor stage: it cannot find lesions")
    rep = Reporter(progress, cancel)
    rep.report(0.05, "loading the lesion model")
    tumor = load_model_file(mset.tumor, cfg.runtime, "tumor")
    # A threshold below the cascade's needs the probabilities, whatever the manifest's output resampling; so the box
    # runs on the linear path with spread windows (the zoom3d path gives a mask), as measured in the README.
    tumor = replace(tumor, manifest=replace(tumor.manifest, output_resampling="probability", resampling="linear",
                                            tile_placement="spread"))
    box = point_box(ct, point_xyz, config.half_box_mm)
    ct_box, mask_box = box.crop(ct), box.crop(mask)
    out = np.zeros(ct.GetSize()[::-1], dtype=bool)
    liver_out, roi, _ = given_liver_stage(ct_box, mask_box, tumor.manifest.roi_margin_mm)
    if roi is None:
        return out
    ct_roi = roi.crop(ct_box)
    t_out, _ = tumor_stage(ct_roi, tumor, cfg, Reporter(rep.sub(0.1, 0.95, "lesion"), cancel), liver_out)
    probability = to_roi_grid(t_out.image, ct_roi)
    local = tuple(int(p) - a - b for p, a, b in zip(point_xyz, box.start, roi.start))[::-1]
    if not all(0 <= q < s for q, s in zip(local, probability.shape)):
        return out  # the point lies outside the liver's box: no lesion the network could see
    lesion = component_at(probability > config.threshold, local, ct.GetSpacing()[::-1], config.snap_mm)
    inner = np.zeros(ct_box.GetSize()[::-1], dtype=bool)
    inner[roi.slices_zyx()] = lesion
    out[box.slices_zyx()] = inner
    rep.report(1.0, "done")
    return out
