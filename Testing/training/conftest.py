"""Fixtures for Training tests: small datasets written in each public layout from the shared real data."""
from __future__ import annotations

import json
import locale
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LiverTumorSegLib.resample import resample_ct, resample_labels


@pytest.fixture(scope="session")
def small_lits(shared_data: Path) -> tuple[sitk.Image, sitk.Image]:
    """LiTS case 117 (real CT + expert liver/tumor labels) at 4 mm: a 32^3 volume."""
    ct = sitk.ReadImage(str(shared_data / "lits117_roi/ct.nii.gz"))
    lab = sitk.ReadImage(str(shared_data / "lits117_roi/label.nii.gz"))
    ct4 = resample_ct(ct, (4.0, 4.0, 4.0))
    return sitk.Cast(ct4, sitk.sitkInt16), resample_labels(lab, ct4)


def write_dicom_series(image: sitk.Image, folder: Path, series_uid: str, modality: str = "CT") -> Path:
    """Write a 3-D image as one DICOM file per slice (SimpleITK), with the tags a series reader needs.

    ITK's GDCM writer leaves the process locale at "C" (ASCII text I/O for the rest of the test run),
    so the caller's locale is put back afterwards.
    """
    saved = locale.setlocale(locale.LC_ALL)
    try:
        return _write_dicom_slices(image, folder, series_uid, modality)
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write_dicom_slices(image: sitk.Image, folder: Path, series_uid: str, modality: str) -> Path:
    """One DICOM file per slice of `image` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetImageIO("GDCMImageIO")  # IRCADb files have no .dcm extension
    direction = image.GetDirection()
    orientation = "\\".join(str(v) for v in (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7]))
    now = time.strftime("%Y%m%d")
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        tags = {"0008|0060": modality, "0020|000e": series_uid, "0020|000d": series_uid + ".1", "0008|0020": now,
                "0020|0037": orientation, "0020|0013": str(k + 1), "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL",
                "0020|0032": "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, k)))),
                "0018|0050": str(image.GetSpacing()[2]), "0008|0018": f"{series_uid}.{k + 1}"}
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"image_{k}"))
        writer.Execute(sl)
    return folder


@pytest.fixture
def lits_root(tmp_path: Path, small_lits) -> Path:
    """LiTS layout: `Training Batch 1/volume-3.nii` and `segmentation-3.nii`."""
    ct, lab = small_lits
    folder = tmp_path / "LiTS" / "Training Batch 1"
    folder.mkdir(parents=True)
    sitk.WriteImage(ct, str(folder / "volume-3.nii"))
    sitk.WriteImage(lab, str(folder / "segmentation-3.nii"))
    sitk.WriteImage(ct, str(folder / "volume-4.nii"))  # a volume without segmentation is skipped
    return tmp_path / "LiTS"


@pytest.fixture
def msd_root(tmp_path: Path, small_lits) -> Path:
    """MSD Task03_Liver layout with dataset.json, imagesTr/, labelsTr/ and a macOS '._' junk file."""
    ct, lab = small_lits
    root = tmp_path / "Task03_Liver"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    sitk.WriteImage(ct, str(root / "imagesTr/liver_7.nii.gz"))
    sitk.WriteImage(lab, str(root / "labelsTr/liver_7.nii.gz"))
    (root / "imagesTr/._liver_7.nii.gz").write_bytes(b"\0junk")
    meta = {"name": "Liver", "labels": {"0": "background", "1": "liver", "2": "cancer"},
            "training": [{"image": "./imagesTr/liver_7.nii.gz", "label": "./labelsTr/liver_7.nii.gz"}]}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def ircadb_root(tmp_path: Path, small_lits) -> Path:
    """3D-IRCADb-01 layout: PATIENT_DICOM/ and MASKS_DICOM/{liver, livertumor01, livertumor02} (0/255 masks)."""
    ct, lab = small_lits
    arr = sitk.GetArrayFromImage(lab)
    patient = tmp_path / "3Dircadb1" / "3Dircadb1.5"
    write_dicom_series(ct, patient / "PATIENT_DICOM", "1.2.826.0.1.3680043.2.1125.1")
    tumor = arr == 2
    half = np.zeros_like(tumor)
    half[: arr.shape[0] // 2] = True
    masks = {"liver": arr >= 1, "livertumor01": tumor & half, "livertumor02": tumor & ~half}
    for k, (name, mask) in enumerate(masks.items()):
        img = sitk.GetImageFromArray(mask.astype(np.uint8) * 255)
        img.CopyInformation(ct)
        write_dicom_series(img, patient / "MASKS_DICOM" / name, f"1.2.826.0.1.3680043.2.1125.{k + 2}")
    return tmp_path / "3Dircadb1"


@pytest.fixture
def csv_file(tmp_path: Path, small_lits) -> Path:
    """Generic CSV manifest with relative paths, a label mapping (tumor stored as 5) and a split column."""
    ct, lab = small_lits
    folder = tmp_path / "csvdata"
    folder.mkdir()
    sitk.WriteImage(ct, str(folder / "a_ct.nii.gz"))
    lab5 = sitk.ChangeLabel(lab, {2: 5})
    sitk.WriteImage(lab5, str(folder / "a_lab.nii.gz"))
    sitk.WriteImage(ct, str(folder / "b_ct.nii.gz"))
    sitk.WriteImage(lab5, str(folder / "b_lab.nii.gz"))
    path = folder / "cases.csv"
    path.write_text("case_id,image,label,label_map,split\n"
                    "a,a_ct.nii.gz,a_lab.nii.gz,1:1;5:2,train\n"
                    "b,b_ct.nii.gz,b_lab.nii.gz,1:1;5:2,val\n")
    return path


#: The shipped default model set's cases that the suite segments, named as in its recorded
#: Training/results/model_sets/<set>/metrics.json (made by `python -m Training.evaluate_model_sets`).
DEFAULT_SET_CASES = ("totalseg_ct", "ct_full_pelvis", "lits117_roi_given_liver")


def _default_set_case(shared: Path, case: str, model_set: str) -> tuple:
    """(result, reference label map (z, y, x) or None, CT) of one case, made as Training.evaluate_model_sets makes it."""
    from LiverTumorSegLib import segment
    from Training.evaluate_model_sets import LITS_SPACING

    ref, kw = None, {}
    if case == "totalseg_ct":
        ct = sitk.ReadImage(str(shared / "totalseg_example/ct.nii.gz"))
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(shared / "totalseg_example/liver_reference.nii.gz")))
    elif case == "ct_full_pelvis":
        ct = sitk.ReadImage(str(shared / "totalseg_example/ct_full.nii.gz"))[:, :, :40]  # ~150 mm below the liver
    elif case == "lits117_roi_given_liver":
        ct, lab = (sitk.ReadImage(str(shared / f"lits117_roi/{f}.nii.gz")) for f in ("ct", "label"))
        for img in (ct, lab):
            img.SetSpacing(LITS_SPACING)  # the files carry 1 mm nominal; 2.5 mm slices assumed, as for the original
        ref, kw = sitk.GetArrayFromImage(lab), {"liver_mask": lab > 0}
    else:
        raise KeyError(case)
    return segment(ct, device="cpu", threads=2, force=True, model_set=model_set, **kw), ref, ct


@pytest.fixture(scope="session")
def default_set_results(shared_data: Path):
    """`get(case)`: (result, reference, CT) of the shipped default model set on a DEFAULT_SET_CASES case, segmented
    once per session however many tests ask (each costs 10-30 s on 2 CPU threads)."""
    from LiverTumorSegLib.config import DEFAULT_MODELS_DIR
    from LiverTumorSegLib.model_sets import list_model_sets

    model_set, cache = list_model_sets(DEFAULT_MODELS_DIR)[0].name, {}

    def get(case: str) -> tuple:
        if case not in cache:
            cache[case] = _default_set_case(shared_data, case, model_set)
        return cache[case]
    return get
