"""DICOM Structured Report (TID 1500 measurement report, highdicom) of a segmentation, referencing its DICOM SEG.

Content: one volumetric group per SEG segment (Liver, Liver tumor: its volume, referencing the segment and the
source series), and one measurement group per lesion (volume, longest axial diameter as the long axis, mean
attenuation in HU), tracked as "Lesion <id>" in the liver. Lesion centroids stay in the lesion CSV/JSON:
the SEG has one tumor segment, so a lesion has no segment of its own to reference.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .dicom_seg import _coded, _hd, _software_version, source_datasets
from .io import atomic_write
from .result import SegmentationResult
from .terminology import LIVER_CODE, SEGMENTS

if TYPE_CHECKING:
    import pydicom

log = logging.getLogger(__name__)
SR_SUFFIX = "_sr.dcm"
#: This project's own code ("99" prefix: a private coding scheme, as DICOM PS3.16 allows): value, scheme, meaning.
LIVER_CUT_OFF = ("LIVERCUTOFF", "99LTS", "Liver cut off by the scan: volume is a lower bound")


def _units():
    """UCUM units used in the report."""
    hd, codes = _hd()
    return hd.sr.CodedConcept("ml", "UCUM", "milliliter"), codes.UCUM.Millimeter, codes.UCUM.HounsfieldUnit


def _algorithm(result: SegmentationResult, stage: str):
    """TID 4019 algorithm identification of the model that made a finding."""
    hd, _ = _hd()
    model = result.models.get(stage, {})
    return hd.sr.AlgorithmIdentification(name=model.get("name", "livertumorseg"),
                                         version=model.get("version", _software_version()))


def _segment_groups(result: SegmentationResult, seg: pydicom.Dataset) -> list:
    """One volumetric measurement group per SEG segment: its volume, referencing the segment."""
    hd, codes = _hd()
    ml, _, _ = _units()
    volumes = {"Liver": result.liver_volume_ml - result.tumor_volume_ml, "Liver tumor": result.tumor_volume_ml}
    specs = {spec.name: spec for spec in SEGMENTS}
    groups = []
    for item in seg.SegmentSequence:
        spec = specs[item.SegmentLabel]
        stage = "liver" if spec.label == 1 else "tumor"
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=item.TrackingUID, identifier=spec.name),
            referenced_segment=hd.sr.ReferencedSegment(
                sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=item.SegmentNumber,
                source_series=hd.sr.SourceSeriesForSegmentation(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)),
            finding_type=_coded(spec.type), finding_category=_coded(spec.category), algorithm_id=_algorithm(result, stage),
            finding_sites=[hd.sr.FindingSite(_coded(LIVER_CODE))] if spec.region.value else None,
            measurements=[hd.sr.Measurement(name=codes.SCT.Volume, value=round(volumes[spec.name], 3), unit=ml)],
            qualitative_evaluations=_cut_off(result) if spec.label == 1 else None))
    return groups


def _cut_off(result: SegmentationResult) -> list | None:
    """A finding that the liver volume is a lower bound, where the liver touches the image border (else None)."""
    hd, _ = _hd()
    cut_off = hd.sr.CodedConcept(*LIVER_CUT_OFF)
    if not result.liver_cut_off():
        return None
    return [hd.sr.QualitativeEvaluation(hd.sr.CodedConcept("121071", "DCM", "Finding"), cut_off)]


def _lesion_groups(result: SegmentationResult) -> list:
    """One measurement group per lesion: volume, longest axial diameter, mean HU."""
    hd, codes = _hd()
    ml, mm, hu = _units()
    return [hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"Lesion {lesion.id}"),
        finding_type=codes.SCT.Neoplasm, finding_sites=[hd.sr.FindingSite(_coded(LIVER_CODE))],
        algorithm_id=_algorithm(result, "tumor"),
        measurements=[hd.sr.Measurement(name=codes.SCT.Volume, value=lesion.volume_ml, unit=ml),
                      hd.sr.Measurement(name=codes.SCT.LongAxis, value=lesion.longest_axial_diameter_mm, unit=mm),
                      hd.sr.Measurement(name=codes.DCM.MeanAttenuationCoefficient, value=lesion.mean_hu, unit=hu)])
        for lesion in result.lesions]


def measurement_report(result: SegmentationResult, seg: pydicom.Dataset, sources: list):
    """A Comprehensive 3D SR holding the TID 1500 measurement report of `result`, with `seg` as evidence."""
    hd, codes = _hd()
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="LiverTumorSeg", manufacturer_name="LiverTumorSeg", model_name=seg.ManufacturerModelName))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=_segment_groups(result, seg) + _lesion_groups(result))
    with warnings.catch_warnings(record=True) as caught:  # highdicom's remarks on the source's own attributes
        warnings.simplefilter("always")
        sr = hd.sr.Comprehensive3DSR(
            evidence=[seg, *sources], content=report[0], series_instance_uid=hd.UID(), series_number=seg.SeriesNumber + 1,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="LiverTumorSeg", is_complete=True,
            series_description="LiverTumorSeg measurements")
    for w in caught:
        log.info("DICOM SR: %s", w.message)
    return sr


def write_dicom_sr(result: SegmentationResult, dicom_folder: str | Path, seg_path: str | Path, path: str | Path, *,
                   overwrite: bool = False) -> Path:
    """Write the measurement report of `result`, referencing the DICOM SEG at `seg_path`, atomically."""
    import pydicom

    sr = measurement_report(result, pydicom.dcmread(seg_path, stop_before_pixels=True), source_datasets(dicom_folder))
    path = Path(path)
    with atomic_write(path, overwrite) as tmp:
        sr.save_as(tmp)
    return path
