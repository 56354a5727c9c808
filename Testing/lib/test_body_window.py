"""The liver network runs on the body's box (issue 17): a wide field of view of air changes neither cost nor output."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from LiverTumorSegLib.cascade import Reporter, body_region, run_model
from LiverTumorSegLib.config import SegmentationConfig
from LiverTumorSegLib.manifest import ModelManifest
from LiverTumorSegLib.runtime import Model
from LiverTumorSegLib.windowing import Normalization
from Testing.conftest import phantom_ct


class GlobalStatisticsNet:
    """A stand-in for an instance-normalised network: its logit depends on the whole window's mean."""

    def __init__(self) -> None:
        self.windows = 0

    def run(self, names, feeds, options=None) -> list[np.ndarray]:  # an ONNX Runtime session's signature
        self.windows += 1
        batch = feeds["image"]
        return [(batch - batch.mean())[:, :1] * 20.0]


def _manifest(window_on_body: bool) -> ModelManifest:
    return ModelManifest(name="stats", stage="liver", version="0", onnx_file="-", sha256="-", classes={0: "background", 1: "liver"},
                         spacing=(3.0, 3.0, 3.0), patch_size=(16, 24, 24), output_activation="sigmoid", pad_value=0.0,
                         normalization=Normalization(clip_low=-200.0, clip_high=200.0, mean=0.0, std=400.0),
                         tile_overlap=0.0, window_on_body=window_on_body)


def _liver(ct: sitk.Image, window_on_body: bool) -> tuple[np.ndarray, int]:
    net = GlobalStatisticsNet()
    model = Model(_manifest(window_on_body), net, "cpu")
    _, probs = run_model(ct, model, SegmentationConfig(), lambda f, m: None, Reporter())
    return sitk.GetArrayFromImage(probs)[..., 1] > 0.5, net.windows


def _padded(ct: sitk.Image, voxels: int) -> sitk.Image:
    return sitk.ConstantPad(ct, [voxels, voxels, 0], [voxels, voxels, 0], -1000)


def test_a_wide_field_of_air_changes_nothing_when_the_window_sits_on_the_body():
    ct = phantom_ct(size_xyz=(48, 48, 20), spacing=(3.0, 3.0, 3.0))
    small, n_small = _liver(ct, True)
    wide, n_wide = _liver(_padded(ct, 12), True)
    assert np.array_equal(wide[:, 12:-12, 12:-12], small) and not wide[:, :12].any()
    assert n_wide == n_small  # no extra window for the air
    # Without it the network sees the air, its statistics move, and so does its output (the test can fail).
    plain_small, _ = _liver(ct, False)
    plain_wide, n_plain = _liver(_padded(ct, 12), False)
    assert not np.array_equal(plain_wide[:, 12:-12, 12:-12], plain_small) and n_plain > n_small


def test_body_region_is_the_box_of_the_largest_body_component_plus_a_margin():
    hu = np.full((10, 30, 30), -1000.0)
    hu[2:8, 5:20, 8:25] = 40.0
    hu[0, 0, 0] = 500.0  # a speck off the body is ignored
    assert body_region(hu) == (slice(0, 10), slice(3, 22), slice(6, 27))
    assert body_region(np.full((4, 4, 4), -1000.0)) is None


def test_a_whole_liver_in_the_top_row_settles_the_liver_window_and_one_touching_its_lower_edge_does_not():
    from LiverTumorSegLib.cascade import liver_settled

    hu = np.full((60, 40, 40), -1000.0, np.float32)
    hu[:, 5:35, 2:38] = 60.0  # body; the patient's right is low x (canonical LPS)
    from dataclasses import replace

    manifest = replace(_manifest(False), min_right_fraction=0.65)  # the shipped liver network's gate
    from LiverTumorSegLib.modality import liver_gate

    cfg = SegmentationConfig()
    settled = liver_settled(manifest, cfg, 0.027, hu, liver_gate("ct", hu, cfg.postprocess))  # 3 mm voxels
    probs = np.zeros((2, 60, 40, 40), np.float32)
    probs[1, 30:50, 10:30, 4:16] = 0.9  # 4800 voxels = 130 ml on the right, lowest slice 30
    assert settled(probs, 20) and settled(probs, 27)
    assert not settled(probs, 28)  # within 3 voxels of the lower edge: the row below might add to it
    small = np.zeros_like(probs)
    small[1, 40:44, 10:14, 4:8] = 0.9  # 1.7 ml: no liver yet
    assert not settled(small, 20)
    left = np.zeros_like(probs)
    left[1, 30:50, 10:30, 24:36] = 0.9  # a liver-sized candidate on the left (a spleen, a heart): not the liver
    assert not settled(left, 20)
