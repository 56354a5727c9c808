"""Write a CT volume as a DICOM CT series, e.g. a shared NIfTI sample, to try `--format dicom-seg` on it.

    python -m LiverTumorSegLib.dicom_series ../shared/data/totalseg_example/ct.nii.gz ct_dicom/

One CT Image Storage file per axial slice (int16 HU, rescale 1 / 0), with the attributes a real CT series
carries and a DICOM SEG needs: patient, study, series, a Frame of Reference, equipment, image plane.
The patient is a made-up "LTS^DEMO": the files hold no real identities.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InvalidInputError, OutputExistsError

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _ds(values) -> list:
    """Numbers as DICOM decimal strings (at most 16 characters each, as the DS value representation allows)."""
    from pydicom.valuerep import DSfloat

    return [DSfloat(float(v), auto_format=True) for v in values]


def _series_dataset(image: sitk.Image, uids: dict[str, str]):
    """The attributes every slice of the series shares (patient, study, series, frame of reference, pixel format)."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.SOPClassUID, ds.Modality, ds.ImageType = CT_IMAGE_STORAGE, "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "LTS^DEMO", "LTS-DEMO", "", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = uids["study"], uids["series"], uids["frame"]
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName, ds.SeriesNumber = "1", "", "", 1
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20000101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.Manufacturer, ds.SeriesDescription, ds.PositionReferenceIndicator = "LiverTumorSeg", "CT written by LiverTumorSeg", ""
    ds.KVP, ds.PatientPosition, ds.AcquisitionNumber, ds.BodyPartExamined = "", "HFS", "", "ABDOMEN"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = image.GetSize()[1], image.GetSize()[0]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
    ds.PixelSpacing = _ds([image.GetSpacing()[1], image.GetSpacing()[0]])  # row spacing (y), column spacing (x), mm
    ds.SliceThickness = _ds([image.GetSpacing()[2]])[0]
    d = np.array(image.GetDirection()).reshape(3, 3)
    ds.ImageOrientationPatient = _ds([*d[:, 0], *d[:, 1]])
    return ds


def write_ct_series(image: sitk.Image, folder: str | Path) -> Path:
    """Write a 3-D CT in HU ((x, y, z) SimpleITK image, any direction) as a DICOM CT series in a new `folder`."""
    import copy

    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if image.GetDimension() != 3:
        raise InvalidInputError(f"a DICOM CT series needs a 3-D image, got {image.GetDimension()}-D")
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise OutputExistsError(f"{folder} exists and is not empty: give a new folder for the DICOM series")
    folder.mkdir(parents=True, exist_ok=True)
    shared = _series_dataset(image, {k: generate_uid() for k in ("study", "series", "frame")})
    hu = np.clip(np.rint(sitk.GetArrayViewFromImage(image)), -32768, 32767).astype(np.int16)  # (z, y, x)
    for k, plane in enumerate(hu):
        ds = copy.deepcopy(shared)
        ds.SOPInstanceUID, ds.InstanceNumber = generate_uid(), k + 1
        ds.ImagePositionPatient = _ds(image.TransformIndexToPhysicalPoint((0, 0, k)))
        ds.PixelData = plane.tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = CT_IMAGE_STORAGE, ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(folder / f"{k + 1:04d}.dcm", enforce_file_format=True)
    return folder


def main(argv: list[str] | None = None) -> int:
    """`python -m LiverTumorSegLib.dicom_series CT OUT_FOLDER`: write CT (any image file) as a DICOM CT series."""
    from .io import read_image

    p = argparse.ArgumentParser(prog="python -m LiverTumorSegLib.dicom_series", description=__doc__.splitlines()[0])
    p.add_argument("ct", type=Path, help="a CT in HU (.nii.gz, .nrrd, .mha, ...)")
    p.add_argument("output", type=Path, help="a new folder for the DICOM files")
    args = p.parse_args(argv)
    try:
        folder = write_ct_series(read_image(args.ct), args.output)
    except (InvalidInputError, OutputExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(list(folder.iterdir()))} DICOM CT files to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
