"""DICOM Segmentation export with highdicom: a binary SEG of the label map that references its source CT series.

One segment per label present in the run ("Liver" = label 1, "Liver tumor" = label 2; they do not overlap,
as in the Slicer segmentation), with the SNOMED CT codes and colours of `terminology.SEGMENTS` and the
model name and version of the stage that produced it. PACS viewers and Slicer (QuantitativeReporting)
overlay it on the CT it references.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from .errors import InvalidInputError
from .io import atomic_write, dicom_series_files
from .result import LIVER, TUMOR, SegmentationResult
from .terminology import SEGMENTS, Code, SegmentSpec

log = logging.getLogger(__name__)
SEG_SUFFIX = "_seg.dcm"
STAGE_OF_LABEL = {LIVER: "liver", TUMOR: "tumor"}
SERIES_NUMBER_OFFSET = 1000  # the SEG series number: the CT's plus this


def _software_version() -> str:
    """This package's version (read late: the package imports this module before it defines it)."""
    from . import __version__

    return __version__


def _hd():
    """highdicom and pydicom's code dictionary, imported when a SEG is made (they are slow to import)."""
    import highdicom
    from pydicom.sr.codedict import codes

    return highdicom, codes


def source_datasets(folder: str | Path) -> list:
    """The DICOM datasets (without pixel data) of the series `read_image(folder)` reads, in the same slice order."""
    import pydicom

    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"a DICOM SEG needs a DICOM series (a folder of DICOM files) as its source; {folder} is "
                                "not a folder, so there are no DICOM instances to reference (write NIfTI or seg.nrrd)")
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in dicom_series_files(folder)]
    for ds in datasets:
        if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
            del ds.SpecificCharacterSet  # empty means the default repertoire; highdicom refuses the empty value
    return datasets


def _check_fits(labels: np.ndarray, sources: list) -> None:
    """Refuse a label map that is not on the grid of the source series (one frame per source slice)."""
    rows, cols = int(sources[0].Rows), int(sources[0].Columns)
    if labels.shape != (len(sources), rows, cols):
        raise InvalidInputError(f"the label map (z, y, x) {labels.shape} is not on the grid of the DICOM series "
                                f"({len(sources)} slices of {rows} x {cols}); segment that series itself")


def _coded(code: Code):
    """A highdicom CodedConcept from a terminology Code."""
    hd, _ = _hd()
    return hd.sr.CodedConcept(code.value, code.scheme, code.meaning)


def segment_description(number: int, spec: SegmentSpec, model: dict[str, str]):
    """The SEG segment for one label: name, SNOMED CT codes, colour, and the model that produced it."""
    hd, codes = _hd()
    algorithm = hd.AlgorithmIdentificationSequence(
        name=model.get("name", "livertumorseg"), family=codes.cid7162.ArtificialIntelligence,
        version=model.get("version", _software_version()),
        parameters={"model set": model["model_set"]} if model.get("model_set") else None)
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=spec.name, segmented_property_category=_coded(spec.category),
        segmented_property_type=_coded(spec.type), algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm, tracking_uid=hd.UID(), tracking_id=spec.name,
        anatomic_regions=[_coded(spec.region)] if spec.region.value else None,
        display_color=hd.color.CIELabColor.from_rgb(*spec.color_rgb))


def segmentation_dataset(result: SegmentationResult, sources: list):
    """A highdicom binary Segmentation of `result` (on the grid of `sources`, in their order)."""
    hd, _ = _hd()
    _check_fits(result.labels, sources)
    specs = [s for s in SEGMENTS if STAGE_OF_LABEL[s.label] in result.models or not result.models]
    masks = np.stack([result.labels == spec.label for spec in specs], axis=-1).astype(np.uint8)
    first = sources[0]
    with warnings.catch_warnings(record=True) as caught:  # highdicom's remarks on the source's own attributes
        warnings.simplefilter("always")
        seg = _segmentation(hd, result, sources, specs, masks, first)
    for w in caught:
        log.info("DICOM SEG: %s", w.message)
    return seg


def _segmentation(hd, result: SegmentationResult, sources: list, specs: list[SegmentSpec], masks: np.ndarray, first):
    """The highdicom constructor call, with this project's identification."""
    return hd.seg.Segmentation(
        source_images=sources, pixel_array=masks, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment_description(i, s, result.models.get(STAGE_OF_LABEL[s.label], {}))
                              for i, s in enumerate(specs, start=1)],
        series_instance_uid=hd.UID(), series_number=SERIES_NUMBER_OFFSET + int(first.get("SeriesNumber") or 0),
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="LiverTumorSeg",
        manufacturer_model_name=_model_name(result), software_versions=_software_version(), device_serial_number="none",
        content_label="LIVERTUMOR", content_description="Liver and liver tumor, automatic",
        series_description="LiverTumorSeg liver and tumor", omit_empty_frames=False)


def _model_name(result: SegmentationResult) -> str:
    """The models that ran, for Manufacturer's Model Name (at most 64 characters)."""
    names = " + ".join(f"{m['name']} {m['version']}" for m in result.models.values()) or "livertumorseg"
    return names[:64]


def write_dicom_seg(result: SegmentationResult, dicom_folder: str | Path, path: str | Path, *,
                    overwrite: bool = False) -> Path:
    """Write `result` (segmented from the DICOM series in `dicom_folder`) as a DICOM SEG file, atomically."""
    seg = segmentation_dataset(result, source_datasets(dicom_folder))
    path = Path(path)
    with atomic_write(path, overwrite) as tmp:
        seg.save_as(tmp)
    return path


def read_dicom_seg_labels(path: str | Path, dicom_folder: str | Path, trust_references: bool = False) -> np.ndarray:
    """A DICOM SEG decoded onto the grid of its source series as a (z, y, x) label map (segment label -> value).

    `trust_references` reads a SEG that references source frames without declaring Spatial Locations
    Preserved (as dcmqi writes them).
    """
    hd, _ = _hd()
    seg = hd.seg.segread(str(path))
    uids = [ds.SOPInstanceUID for ds in source_datasets(dicom_folder)]
    numbers = list(seg.get_segment_numbers())
    by_name = {spec.name: spec.label for spec in SEGMENTS}
    labels = {n: by_name.get(seg.get_segment_description(n).segment_label, n) for n in numbers}
    masks = seg.get_pixels_by_source_instance(uids, segment_numbers=numbers, assert_missing_frames_are_empty=True,
                                              ignore_spatial_locations=trust_references)
    out = np.zeros(masks.shape[:3], np.uint8)
    for i, n in enumerate(numbers):
        out[masks[..., i] > 0] = labels[n]
    return out
