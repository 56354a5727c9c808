"""Resampling between grids and the ROI crop/paste used by the cascade."""
import numpy as np
import pytest
import SimpleITK as sitk

from LiverTumorSegLib.preprocess import liver_roi
from LiverTumorSegLib.resample import grid_for_spacing, resample_labels, resample_like, resample_to_spacing
from LiverTumorSegLib.roi import Box, box_on_image, mask_box, paste

from .test_geometry import OBLIQUE


def test_coarse_grid_covers_the_same_field_of_view(phantom):
    ref = grid_for_spacing(phantom, (3.0, 3.0, 3.0))
    lo_in = np.array(phantom.TransformContinuousIndexToPhysicalPoint((-0.5,) * 3))
    lo_out = np.array(ref.TransformContinuousIndexToPhysicalPoint((-0.5,) * 3))
    centre = lambda im: np.array(im.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in im.GetSize()]))
    np.testing.assert_allclose(centre(ref), centre(phantom), atol=1e-6)
    assert np.all(np.abs(lo_out - lo_in) <= 1.5 + 1e-6)
    assert ref.GetDirection() == phantom.GetDirection()


def test_resampling_to_the_same_spacing_is_a_no_op(phantom):
    assert resample_to_spacing(phantom, phantom.GetSpacing()) is phantom


def test_labels_survive_a_round_trip_through_a_finer_grid(phantom):
    labels = sitk.Cast(phantom > 60, sitk.sitkUInt8)
    fine = resample_labels(labels, [s / 2 for s in phantom.GetSpacing()])
    back = resample_labels(fine, labels)
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(labels))


def test_mask_box_is_tight_and_none_when_empty():
    m = np.zeros((10, 12, 14), bool)
    m[2:5, 3:9, 4:6] = True
    box = mask_box(m)
    assert box == Box((4, 3, 2), (6, 9, 5))
    assert m[box.slices_zyx()].all() and m.sum() == m[box.slices_zyx()].sum()
    assert mask_box(np.zeros((3, 3, 3))) is None


def test_crop_and_paste_are_exact(phantom):
    box = Box((3, 4, 5), (20, 30, 25))
    crop = box.crop(phantom)
    assert crop.GetOrigin() == phantom.TransformIndexToPhysicalPoint(box.start)
    arr = sitk.GetArrayFromImage(phantom)
    out = np.zeros_like(arr)
    paste(out, sitk.GetArrayFromImage(crop), box)
    np.testing.assert_array_equal(out[box.slices_zyx()], arr[box.slices_zyx()])
    assert not out[: box.start[2]].any()


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), OBLIQUE])
def test_roi_on_the_input_grid_covers_a_coarse_mask_plus_margin(direction):
    ct = sitk.Image(60, 50, 40, sitk.sitkInt16)
    ct.SetSpacing((0.8, 0.8, 1.5)); ct.SetOrigin((5.0, -3.0, 100.0)); ct.SetDirection(direction)
    coarse = resample_like(ct, grid_for_spacing(ct, (3.0, 3.0, 3.0)), interpolator=sitk.sitkNearestNeighbor)
    mask = sitk.GetArrayFromImage(coarse) * 0
    mask[4:8, 5:9, 6:10] = 1
    mask_img = sitk.GetImageFromArray(mask.astype(np.uint8)); mask_img.CopyInformation(coarse)
    box = liver_roi(mask_img, ct, margin_mm=6.0)
    on_ct = resample_labels(mask_img, ct)
    inside = sitk.GetArrayViewFromImage(on_ct)[box.slices_zyx()].sum()
    assert inside == sitk.GetArrayViewFromImage(on_ct).sum() > 0
    tight = mask_box(sitk.GetArrayViewFromImage(on_ct))
    assert all(b <= t for b, t in zip(box.start, tight.start)) and all(b >= t for b, t in zip(box.stop, tight.stop))


def test_roi_is_clipped_to_the_volume():
    ct = sitk.Image(20, 20, 20, sitk.sitkInt16)
    box = box_on_image(Box((0, 0, 0), (20, 20, 20)), ct, ct, margin_mm=50.0)
    assert box == Box((0, 0, 0), (20, 20, 20))


def test_models_see_the_same_anatomy_whatever_the_storage_order(shared_data):
    from LiverTumorSegLib.io import read_image
    from LiverTumorSegLib.manifest import ModelManifest
    from LiverTumorSegLib.preprocess import to_model_grid
    from LiverTumorSegLib.windowing import Normalization

    m = ModelManifest("t", "liver", "1", "", "", {0: "background"}, (3.0, 3.0, 3.0), (8, 8, 8), Normalization(-1, 1, 0, 1))
    ct = read_image(shared_data / "totalseg_example/ct.nii.gz")  # stored RAS-wise
    flipped = sitk.Flip(ct, [True, True, False])  # the same physical image stored LPS-wise
    a, b = (sitk.GetArrayFromImage(to_model_grid(im, m)) for im in (ct, flipped))
    np.testing.assert_allclose(a, b, atol=1e-3)
