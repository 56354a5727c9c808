"""pyliverlesionseg's lesion stage as we run it: zoom3d resampling, its tiling of the dilated liver, the zoom back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from LiverTumorSegLib.errors import ModelError
from LiverTumorSegLib.manifest import ModelManifest
from LiverTumorSegLib.roi import Box
from LiverTumorSegLib.runtime import Model
from LiverTumorSegLib.tiling import deepvoxnet_starts, liver_grid, predict_tiles
from LiverTumorSegLib.windowing import Normalization
from LiverTumorSegLib.zoom import apply_block, corner_aligned_matrix, reach, zoom3d_matrix, zoomed_size
from LiverTumorSegLib.zoom_stage import lps_view, to_lps, zoom_tumor_mask

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "pymirc_zoom3d_reference.npz"
EVERYTHING = (slice(None),) * 3


def test_zoom3d_matrices_reproduce_pymirc_and_the_zoom_back_reproduces_scipy():
    ref = np.load(REFERENCE)  # written by Training/pretrained/zoom_reference.py with pymirc itself
    for i in range(3):
        volume, zooms = ref[f"volume_{i}"], ref[f"zooms_{i}"]
        down = [zoom3d_matrix(n, z) for n, z in zip(volume.shape, zooms)]
        assert np.allclose(apply_block(volume, down, EVERYTHING), ref[f"zoomed_{i}"], atol=1e-12)
        mask = ref[f"mask_{i}"]
        up = [corner_aligned_matrix(n, k) for n, k in zip(volume.shape, mask.shape)]
        back = apply_block(mask, up, EVERYTHING)
        assert np.allclose(back, ref[f"back_{i}"], atol=1e-12)
        assert np.array_equal(back > 0, ref[f"back_{i}"] > 0)


def test_zoom3d_halving_averages_pairs_on_a_centred_grid_and_a_block_equals_the_whole_result():
    w = zoom3d_matrix(6, 0.5)
    assert np.allclose(w @ np.arange(6.0), [0.5, 2.5, 4.5])
    assert zoomed_size(5, 0.5) == 3 and np.allclose(zoom3d_matrix(5, 0.5).sum(axis=1), [0.75, 1.0, 0.75])  # centred
    rng = np.random.default_rng(3)
    volume = rng.normal(size=(14, 17, 11))
    mats = [zoom3d_matrix(n, z) for n, z in zip(volume.shape, (0.5, 0.8, 1.3))]
    rows = (slice(1, 5), slice(3, 9), slice(2, 12))
    cols = tuple(reach(w, r) for w, r in zip(mats, rows))
    block = apply_block(volume[cols], mats, rows, offset=tuple(c.start for c in cols))
    assert np.allclose(block, apply_block(volume, mats, EVERYTHING)[rows])


def test_tile_starts_follow_deepvoxnet_without_the_windows_the_last_one_overwrites():
    assert deepvoxnet_starts(84, 42) == [0, 42]
    assert deepvoxnet_starts(45, 42) == [0, 3]  # the original also runs 42, whose output the window at 3 overwrites
    assert deepvoxnet_starts(190, 84) == [0, 84, 106]
    assert deepvoxnet_starts(30, 42) == [-6]  # centred on the axis' centre voxel 15
    grid = liver_grid((45, 190, 30), (42, 84, 92))
    assert len(grid) == 2 * 3 * 1
    assert grid[0] == (0, 190 - 84, -31) and grid[1] == (3, 106, -31)  # RAS: y from the far end; x centred (15 - 46)
    assert [g[1] for g in grid[::2]] == [106, 22, 0]


def test_predict_tiles_later_windows_overwrite_and_unreached_voxels_are_background():
    volume = np.arange(10.0, dtype=np.float32).reshape(10, 1, 1) * np.ones((10, 3, 3), np.float32)
    calls = []

    def predict(patch):  # centre crop of 1 voxel on each side in z, channel 1 = the window's index
        calls.append(patch.shape)
        out = np.full((2, patch.shape[0] - 2, 3, 3), len(calls), np.float32)
        return out

    probs = predict_tiles(volume, predict, (6, 3, 3), [(0, 0, 0), (2, 0, 0)], output_crop=(1, 0, 0), pad_value=-1.0)
    assert calls == [(6, 3, 3), (6, 3, 3)]
    assert list(probs[1, :, 1, 1]) == [1, 1, 2, 2, 2, 2, 0, 0, 0, 0]
    assert np.all(probs[0, 6:] == 1.0)


def test_predict_tiles_stops_between_windows_when_cancelled_and_reports_progress():
    import threading

    from LiverTumorSegLib.errors import CancelledError

    cancel, seen = threading.Event(), []

    def predict(patch):
        cancel.set()  # the user clicks Cancel while the first window runs
        return np.zeros((2, patch.shape[0] - 2, 3, 3), np.float32)

    with pytest.raises(CancelledError):
        predict_tiles(np.zeros((10, 3, 3), np.float32), predict, (6, 3, 3), [(0, 0, 0), (4, 0, 0)],
                      output_crop=(1, 0, 0), cancel=cancel, progress=lambda f, m: seen.append(f))
    assert seen == [0.5]


def test_lps_view_permutes_and_flips_to_canonical_axes():
    image = sitk.Image([4, 5, 6], sitk.sitkUInt8)  # x, y, z sizes
    assert lps_view(image) == ((0, 1, 2), (False, False, False))
    image.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, -1))  # x runs towards the right, z towards the feet
    array = np.arange(6 * 5 * 4).reshape(6, 5, 4)
    view = lps_view(image)
    assert view == ((0, 1, 2), (True, False, True))
    assert to_lps(array, view)[0, 0, 0] == array[-1, 0, -1]
    image.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))  # index x runs along P, index y along L
    assert lps_view(image)[0] == (0, 2, 1)


def _lesion_manifest(**kw) -> ModelManifest:
    fields = dict(name="rule", stage="tumor", version="0", onnx_file="-", sha256="-", classes={0: "background", 1: "tumor"},
                  spacing=(1.0, 1.0, 3.0), patch_size=(10, 20, 24), output_crop=(2, 4, 4), output_activation="sigmoid",
                  normalization=Normalization(clip_low=-200.0, clip_high=200.0, mean=0.0, std=400.0), pad_value=0.0,
                  liver_mask={"dilation_voxels": 2, "fill_value": -0.5}, output_resampling="binary_any",
                  resampling="zoom3d", tile_placement="liver_grid")
    fields.update(kw)
    return ModelManifest(**fields)


class _HypodenseRule:
    """A stand-in lesion network: 'tumor' where the window's centre is near water (normalised within +-0.1)."""

    def run(self, names, feeds, options=None):
        x = feeds["image"][:, :, 2:-2, 4:-4, 4:-4]
        return [np.where(np.abs(x) < 0.1, 8.0, -8.0).astype(np.float32)]


def _phantom(direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> tuple[sitk.Image, np.ndarray, np.ndarray]:
    """A CT (0.8 x 0.8 x 1.5 mm) with a liver ball (150 HU, in 300 HU) holding a 0 HU lesion, its liver and lesion."""
    z, y, x = np.mgrid[:40, :90, :100]
    r_liver = np.sqrt(((z - 20) * 1.5) ** 2 + ((y - 45) * 0.8) ** 2 + ((x - 50) * 0.8) ** 2)
    r_lesion = np.sqrt(((z - 22) * 1.5) ** 2 + ((y - 40) * 0.8) ** 2 + ((x - 55) * 0.8) ** 2)
    liver, lesion = r_liver < 26, r_lesion < 9
    hu = np.where(liver, 150, 300).astype(np.int16)
    hu[lesion] = 0
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing((0.8, 0.8, 1.5))
    ct.SetDirection(direction)
    return ct, liver, lesion


def test_the_zoom_stage_finds_a_hypodense_lesion_inside_the_liver_whatever_the_array_orientation():
    model = Model(_lesion_manifest(), _HypodenseRule(), "cpu")
    ct, liver, lesion = _phantom()
    box = Box((0, 0, 0), ct.GetSize())
    found = zoom_tumor_mask(ct, box, liver, model, modality="ct")
    dice = 2 * (found & lesion).sum() / (found.sum() + lesion.sum())
    assert dice > 0.85
    assert not (found & ~ndimage.binary_dilation(liver, iterations=8)).any()
    # The same patient stored with x and z reversed: the same voxels, found the same way.
    flipped = sitk.GetImageFromArray(np.flip(sitk.GetArrayFromImage(ct), (0, 2)).copy())
    flipped.SetSpacing(ct.GetSpacing())
    flipped.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, -1))
    again = zoom_tumor_mask(flipped, box, np.flip(liver, (0, 2)), model, modality="ct")
    assert np.array_equal(np.flip(again, (0, 2)), found)


def test_the_zoom_stage_is_reported_on_the_box_it_was_given():
    model = Model(_lesion_manifest(), _HypodenseRule(), "cpu")
    ct, liver, lesion = _phantom()
    whole = zoom_tumor_mask(ct, Box((0, 0, 0), ct.GetSize()), liver, model, modality="ct")
    box = Box((15, 10, 2), (90, 80, 38))
    part = zoom_tumor_mask(ct, box, liver[box.slices_zyx()], model, modality="ct")
    assert np.array_equal(part, whole[box.slices_zyx()])


def test_zoom3d_and_the_liver_grid_come_only_together_with_what_they_need():
    with pytest.raises(ModelError, match="go together"):
        _lesion_manifest(tile_placement="spread")
    with pytest.raises(ModelError, match="go together"):
        _lesion_manifest(liver_mask=None)
    with pytest.raises(ModelError, match="unknown resampling"):
        _lesion_manifest(resampling="cubic")


def test_add_lesion_still_runs_the_shipped_lesion_network_on_its_probability_path(shared_data):
    from LiverTumorSegLib.lesion_at import lesion_at

    case = shared_data / "lits117_roi"
    ct, labels = sitk.ReadImage(str(case / "ct.nii.gz")), sitk.ReadImage(str(case / "label.nii.gz"))
    for image in (ct, labels):
        image.SetSpacing((1.0, 1.0, 2.5))
    truth = sitk.GetArrayFromImage(labels)
    lesions, n = ndimage.label(truth == 2)
    biggest = np.argmax(np.bincount(lesions.ravel())[1:]) + 1
    deepest = np.unravel_index(np.argmax(ndimage.distance_transform_edt(lesions == biggest)), truth.shape)
    found = lesion_at(ct, truth > 0, tuple(int(v) for v in deepest[::-1]), model_set="pyliverlesionseg", device="cpu")
    assert found[deepest] and (found & (lesions == biggest)).sum() > 0.5 * found.sum()
