"""I/O details mutation testing found unchecked: the seg.nrrd segment extent, and a folder holding several DICOM series."""
from __future__ import annotations

import logging

import numpy as np
import SimpleITK as sitk

from LiverTumorSegLib.io import read_image, seg_nrrd_image, write_image

from ..training.conftest import write_dicom_series


def test_seg_nrrd_segment_extent_spans_the_whole_grid(tmp_path, phantom):
    labels = sitk.Cast(phantom > 90, sitk.sitkUInt8)  # 40 x 36 x 30 voxels
    header = write_image(seg_nrrd_image(labels), tmp_path / "c.seg.nrrd").read_bytes().split(b"\n\n")[0].decode()
    for segment in (0, 1):
        assert f"Segment{segment}_Extent:=0 39 0 35 0 29" in header


def test_a_folder_with_two_dicom_series_reads_the_larger_and_says_so(tmp_path, phantom, caplog):
    small = phantom[:, :, :10]
    write_dicom_series(sitk.Cast(phantom, sitk.sitkInt16), tmp_path / "study", "1.2.826.0.1.3680043.2.1125.201")
    write_dicom_series(sitk.Cast(small, sitk.sitkInt16), tmp_path / "other", "1.2.826.0.1.3680043.2.1125.202")
    for f in (tmp_path / "other").iterdir():
        f.rename(tmp_path / "study" / f"other_{f.name}")
    with caplog.at_level(logging.WARNING, logger="LiverTumorSegLib.io"):
        image = read_image(tmp_path / "study")
    assert image.GetSize() == phantom.GetSize()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(phantom))
    assert any("2 DICOM series" in r.getMessage() and "30 files" in r.getMessage() for r in caplog.records)
