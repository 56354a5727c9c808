"""The two time points of a comparison: a CT with its labels, from a CT (segmented here), a CT and given labels,
or an earlier `predict` run's outputs; and the DICOM patient check."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

import numpy as np
import SimpleITK as sitk

from ..errors import InvalidInputError
from ..geometry import Volume, same_grid
from ..io import case_name, dicom_series_files, read_image
from ..outputs import RECORD_SUFFIX

log = logging.getLogger(__name__)
ImageLike = Union[sitk.Image, Volume, str, Path]  # typing.Union: Python 3.9 (Slicer 5.8)
LABEL_SUFFIXES = ("_seg.nii.gz", ".seg.nrrd")  # what `predict` writes, in order of preference
PATIENT_TAGS = {"0010|0020": "PatientID", "0010|0010": "PatientName", "0010|0030": "PatientBirthDate"}
STUDY_DATE = "0008|0020"


@dataclass
class TimePoint:
    """One time point: the CT (HU) and its 0 background / 1 liver / 2 tumor label map on the CT's grid."""

    ct: sitk.Image
    labels: sitk.Image
    name: str  # a case name for reports
    source: str = ""  # where it came from (a path), '' for an image in memory
    tags: dict[str, str] = field(default_factory=dict)  # DICOM patient tags and StudyDate, when the CT is a series
    segmented_here: bool = False


def _as_image(image: ImageLike, what: str) -> sitk.Image:
    """A SimpleITK image from a path, a Volume or an image."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Volume):
        return image.to_sitk()
    if isinstance(image, sitk.Image):
        return image
    raise InvalidInputError(f"{what}: expected a path, a Volume or a SimpleITK image, got {type(image).__name__}")


def _as_labels(labels: ImageLike | np.ndarray, ct: sitk.Image, what: str) -> sitk.Image:
    """A uint8 label map on the CT's grid (an array is taken to be on it); InvalidInputError otherwise."""
    if isinstance(labels, np.ndarray):
        image = sitk.GetImageFromArray(labels.astype(np.uint8))
        if image.GetSize() == ct.GetSize():
            image.CopyInformation(ct)
    else:
        image = sitk.Cast(_as_image(labels, what), sitk.sitkUInt8)
    if not same_grid(image, ct, tol=1e-3):
        raise InvalidInputError(f"{what} labels are not on the CT's grid (size, spacing, origin or direction differ)")
    values = set(np.unique(sitk.GetArrayViewFromImage(image)).tolist())
    if not values <= {0, 1, 2}:
        raise InvalidInputError(f"{what} labels hold values {sorted(values)}; expected 0 background, 1 liver, 2 tumor")
    return image


def earlier_run(path: Path) -> tuple[Path, Path, str] | None:
    """(CT, label map, case name) recorded by an earlier `predict` run in `path` (its folder or its _lesions.json)."""
    records = [path] if path.is_file() and path.name.endswith(RECORD_SUFFIX) else \
        sorted(path.glob(f"*{RECORD_SUFFIX}")) if path.is_dir() else []
    if not records:
        return None
    if len(records) > 1:
        raise InvalidInputError(f"{path} holds the outputs of {len(records)} cases; name one case's {RECORD_SUFFIX} file")
    case = records[0].name[: -len(RECORD_SUFFIX)]
    try:
        source = json.loads(records[0].read_text()).get("input")
    except (OSError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"cannot read the earlier run's record {records[0]}: {exc}") from exc
    labels = [records[0].with_name(case + s) for s in LABEL_SUFFIXES if records[0].with_name(case + s).is_file()]
    if not source or not Path(source).exists():
        raise InvalidInputError(f"{records[0]} names its CT as {source!r}, which is not there any more")
    if not labels:
        raise InvalidInputError(f"{records[0].parent} has no label map of case {case} ({' or '.join(LABEL_SUFFIXES)})")
    return Path(source), labels[0], case


def dicom_tags(path: Path) -> dict[str, str]:
    """Patient tags and StudyDate of the first file of a DICOM series folder ({} for other inputs)."""
    if not Path(path).is_dir():
        return {}
    reader = sitk.ImageFileReader()
    reader.SetFileName(dicom_series_files(path)[0])
    reader.ReadImageInformation()
    keys = {**PATIENT_TAGS, STUDY_DATE: "StudyDate"}
    return {name: reader.GetMetaData(tag).strip() for tag, name in keys.items() if reader.HasMetaDataKey(tag)}


def load_time_point(image: ImageLike, labels: ImageLike | np.ndarray | None, what: str,
                    segment: Callable[[sitk.Image], sitk.Image]) -> TimePoint:
    """A time point from a CT (+ labels, else `segment(ct)` makes them) or from an earlier run's outputs."""
    path = Path(image) if isinstance(image, (str, Path)) else None
    run = earlier_run(path) if path is not None and labels is None else None
    if run is not None:
        path, labels, name = run
        log.info("%s: using the earlier run's labels %s (CT %s)", what, labels, path)
    else:
        name = case_name(path) if path is not None else what
    ct = _as_image(path if path is not None else image, what)
    done_here = labels is None
    label_image = segment(ct) if done_here else _as_labels(labels, ct, what)
    return TimePoint(ct, label_image, name, str(path or ""), dicom_tags(path) if path else {}, done_here)


def check_same_patient(baseline: TimePoint, followup: TimePoint, force: bool) -> list[str]:
    """Refuse two different patients (DICOM tags) unless `force`; warnings for a forced pair or swapped dates."""
    differ = [name for name in PATIENT_TAGS.values()
              if baseline.tags.get(name) and followup.tags.get(name) and baseline.tags[name] != followup.tags[name]]
    warnings = []
    if differ:
        message = (f"the two CTs belong to different patients by their DICOM tags ({', '.join(differ)} differ: "
                   + "; ".join(f"{baseline.tags[n]!r} vs {followup.tags[n]!r}" for n in differ) + ")")
        if not force:
            raise InvalidInputError(message + "; use force=True to compare them anyway")
        warnings.append(message + "; compared because forced")
    dates = baseline.tags.get("StudyDate", ""), followup.tags.get("StudyDate", "")
    if all(dates) and dates[0] > dates[1]:
        warnings.append(f"the baseline ({dates[0]}) was taken after the follow-up ({dates[1]}): are they swapped?")
    return warnings
