"""`compare`: a patient's baseline and follow-up CT, lesion by lesion (register -> carry lesions -> match -> report)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from ..config import PostprocessConfig
from ..errors import InvalidInputError
from ..lesions import organ_volumes_ml
from ..geometry import Geometry
from .config import CompareConfig
from .inputs import ImageLike, TimePoint, check_same_patient, load_time_point
from .matching import Track, lesion_map, match, track_maps
from .registration import Registration, register, warp_labels
from .response import change_row, recist, status_counts, totals

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]


@dataclass
class Comparison:
    """The result: lesion tracks, their change rows, totals, the response aid, and how well the CTs were aligned."""

    baseline: TimePoint
    followup: TimePoint
    registration: Registration
    tracks: list[Track]
    baseline_tracks: sitk.Image  # uint16 track ids on the baseline CT's grid (0 = no tracked lesion)
    followup_tracks: sitk.Image  # uint16 track ids on the follow-up CT's grid, the same id for the same lesion
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def rows(self) -> list[dict]:
        """One row per lesion track (the CSV)."""
        return [change_row(t) for t in self.tracks]

    def summary(self) -> dict:
        """Totals at both times, counts per status, the RECIST-style aid, registration quality, warnings."""
        volumes = [organ_volumes_ml(sitk.GetArrayViewFromImage(tp.labels), Geometry.of(tp.labels))
                   for tp in (self.baseline, self.followup)]
        return {**{when: {"name": tp.name, "input": tp.source, "segmented_here": tp.segmented_here}
                   for when, tp in (("baseline", self.baseline), ("followup", self.followup))},
                **totals((volumes[0][0], volumes[1][0]), (volumes[0][1], volumes[1][1])),
                "status_counts": status_counts(self.tracks), "recist_liver": recist(self.tracks),
                "registration": self.registration.summary(), "warnings": self.warnings,
                "seconds": round(self.seconds, 2)}


def _segmenter(options: dict, progress: Progress | None, lo: float, hi: float) -> Callable[[sitk.Image], sitk.Image]:
    """segment(ct) -> label image, with `options` passed to `LiverTumorSegLib.segment`; progress mapped to [lo, hi]."""
    def run(ct: sitk.Image) -> sitk.Image:
        from ..api import segment  # the networks are needed only when a time point has no labels yet

        inner = (lambda f, m: progress(lo + f * (hi - lo), f"segmenting: {m}")) if progress else None
        return segment(ct, progress=inner, **options).label_image()
    return run


def check_liver(tp: TimePoint, what: str, min_ml: float = PostprocessConfig.min_liver_ml) -> None:
    """InvalidInputError when a time point's labels hold (almost) no liver: nothing to register or compare."""
    liver_ml, _ = organ_volumes_ml(sitk.GetArrayViewFromImage(tp.labels), Geometry.of(tp.labels))
    if liver_ml < min_ml:
        raise InvalidInputError(f"the {what} ({tp.name}) shows {liver_ml:.1f} ml of liver (needs {min_ml:g} ml): "
                                "is the liver in its field of view?")


def compare(baseline: ImageLike, followup: ImageLike, *, baseline_labels: ImageLike | np.ndarray | None = None,
            followup_labels: ImageLike | np.ndarray | None = None, config: CompareConfig = CompareConfig(),
            progress: Progress | None = None, **segment_options) -> Comparison:
    """Compare two CTs of one patient lesion by lesion; the follow-up is registered to the baseline.

    Each time point is a CT (path, DICOM folder, SimpleITK image or Volume in HU) with its 0/1/2 label map
    (`*_labels`, on that CT's grid, array (z, y, x) or image), or an earlier `predict` output folder; a CT without
    labels is segmented with `segment_options` (e.g. fast=True, threads=1). Raises InvalidInputError (other
    patient, no liver) and RegistrationError; writes nothing (see `write_comparison`).
    """
    t0 = time.perf_counter()
    report = progress or (lambda f, m: None)
    base = load_time_point(baseline, baseline_labels, "baseline", _segmenter(segment_options, progress, 0.0, 0.4))
    follow = load_time_point(followup, followup_labels, "follow-up", _segmenter(segment_options, progress, 0.4, 0.8))
    warnings = check_same_patient(base, follow, config.force)
    check_liver(base, "baseline")
    check_liver(follow, "follow-up")
    report(0.8, "registering the follow-up to the baseline")
    reg = register(base.ct, base.labels, follow.ct, follow.labels, config.registration, config.alignment)
    report(0.95, "matching lesions")
    tracks, maps = _match(base, follow, reg, config)
    for w in warnings + reg.warnings:
        log.warning(w)
    report(1.0, "done")
    return Comparison(base, follow, reg, tracks, *maps, warnings=warnings + reg.warnings, seconds=time.perf_counter() - t0)


def _match(base: TimePoint, follow: TimePoint, reg: Registration, config: CompareConfig) -> tuple[list[Track], tuple[sitk.Image, sitk.Image]]:
    """Lesion tracks and the two track-id maps (images on each CT's grid)."""
    maps = []
    for tp in (base, follow):
        maps.append(lesion_map(sitk.GetArrayFromImage(tp.labels), sitk.GetArrayViewFromImage(tp.ct), Geometry.of(tp.ct)))
    (base_ids, base_lesions), (follow_ids, follow_lesions) = maps
    tracks = match(base_ids, base_lesions, base.labels, follow_ids, follow_lesions, follow.labels, reg.transform, config.matching)
    images = []
    for array, tp in zip(track_maps(tracks, base_ids, follow_ids), (base, follow)):
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(tp.labels)
        images.append(image)
    return tracks, (images[0], images[1])


def registered_followup(comparison: Comparison) -> tuple[sitk.Image, sitk.Image]:
    """(follow-up CT in HU, follow-up track ids) carried onto the baseline grid: one place shows one lesion at both times."""
    reference, transform = comparison.baseline.ct, comparison.registration.transform
    ct = sitk.Resample(comparison.followup.ct, reference, transform, sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
    return ct, warp_labels(comparison.followup_tracks, transform, reference)
