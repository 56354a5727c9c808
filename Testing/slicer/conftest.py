"""Fixtures of the Slicer module tests: a fresh headless Slicer scene per test (see headless_slicer.py),
the module's Qt-free logic, and the shared 3 mm CT with the library's own result as the reference."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

from .headless_slicer import HeadlessSlicer

MODULE_DIR = Path(__file__).resolve().parents[2] / "LiverTumorSeg"
sys.path.insert(0, str(MODULE_DIR))  # as in Slicer, where the module's folder is on sys.path


@pytest.fixture
def headless(monkeypatch) -> HeadlessSlicer:
    """A fresh headless Slicer scene per test, published as slicer.mrmlScene & co."""
    env = HeadlessSlicer.create()
    env.publish(monkeypatch)
    yield env
    env.scene.Clear(1)


@pytest.fixture
def logic(headless):
    """The module's Qt-free logic, on the test's scene."""
    from LiverTumorSegLogic import LiverTumorSegLogic

    return LiverTumorSegLogic()


@pytest.fixture(scope="session")
def small_ct_path(shared_data) -> Path:
    """The 3 mm abdominal CT (122 x 101 x 30) of the shared data."""
    return shared_data / "totalseg_example" / "ct.nii.gz"


@pytest.fixture(scope="session")
def small_ct(small_ct_path) -> sitk.Image:
    """The 3 mm abdominal CT as read by SimpleITK (the library's reader)."""
    return sitk.ReadImage(str(small_ct_path))


@pytest.fixture(scope="session")
def small_ct_result(small_ct):
    """The library's own segmentation of the 3 mm CT: the reference the module must reproduce."""
    from LiverTumorSegLib import segment

    return segment(small_ct)


@pytest.fixture(scope="session")
def lesion_case(shared_data, tmp_path_factory):
    """A 42 x 37 x 26 mm crop of LiTS case 117 (real CT, expert labels, 12 lesions) saved as NRRD, and the
    SegmentationResult the library builds from those labels (its own lesion measurements)."""
    from LiverTumorSegLib import Geometry, SegmentationResult
    from LiverTumorSegLib.lesions import measure_lesions, organ_volumes_ml, slices_with_tumor

    folder = shared_data / "lits117_roi"
    crop = (slice(30, 72), slice(35, 72), slice(30, 56))  # x, y, z: around the smaller lesions
    ct = sitk.ReadImage(str(folder / "ct.nii.gz"))[crop]
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "label.nii.gz"))[crop]).astype("uint8")
    geometry = Geometry.of(ct)
    liver_ml, tumor_ml = organ_volumes_ml(labels, geometry)
    lesions = measure_lesions(labels, sitk.GetArrayFromImage(ct), geometry)
    path = tmp_path_factory.mktemp("lesion_case") / "lits117_crop.nrrd"
    sitk.WriteImage(ct, str(path))
    return path, SegmentationResult(labels, geometry, lesions, liver_ml, tumor_ml, slices_with_tumor(labels))
