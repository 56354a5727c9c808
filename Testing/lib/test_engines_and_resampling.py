"""CPU engines (OpenVINO with ONNX Runtime as fallback), test-time mirroring and the original's output resampling."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import SimpleITK as sitk

from LiverTumorSegLib.cascade import stage_output
from LiverTumorSegLib.config import RuntimeConfig
from LiverTumorSegLib.errors import LiverTumorSegError
from LiverTumorSegLib.manifest import ModelManifest
from LiverTumorSegLib.runtime import load_model_file, resolve_cpu_engine
from LiverTumorSegLib.sliding_window import mirrored_probabilities, sigmoid_two_class
from LiverTumorSegLib.windowing import Normalization
from Testing.conftest import TEST_MODELS


def _manifest(resampling: str) -> ModelManifest:
    return ModelManifest(name="m", stage="tumor", version="0", onnx_file="-", sha256="-", classes={0: "background", 1: "tumor"},
                         spacing=(3.0, 3.0, 3.0), patch_size=(8, 8, 8), output_activation="sigmoid",
                         normalization=Normalization(clip_low=-200.0, clip_high=200.0, mean=0.0, std=400.0),
                         output_resampling=resampling)


def test_binary_any_grows_an_object_by_up_to_one_model_voxel_where_probabilities_do_not():
    coarse = np.zeros((5, 5, 5), np.float32)
    coarse[2, 2, 2] = 0.6  # one model voxel just above 0.5
    prob = sitk.GetImageFromArray(coarse)
    prob.SetSpacing((3.0, 3.0, 3.0))
    fine = sitk.Image([15, 15, 15], sitk.sitkUInt8)
    fine.SetOrigin((-1.0, -1.0, -1.0))  # 1 mm voxels over the same field of view
    grown = stage_output(prob, _manifest("binary_any")).on(fine)
    plain = stage_output(prob, _manifest("probability")).on(fine)
    assert plain.sum() < grown.sum()
    zz, yy, xx = np.nonzero(grown)
    assert zz.min() >= 3 and zz.max() <= 11  # never beyond the neighbouring model voxels' centres (3 mm each side)
    with pytest.raises(Exception, match="output_resampling"):
        _manifest("nearest")


def test_mirroring_averages_the_mirror_images_and_none_is_one_plain_run():
    rng = np.random.default_rng(0)
    patch = rng.normal(size=(4, 6, 8)).astype(np.float32)
    ramp = np.arange(patch.size, dtype=np.float32).reshape(patch.shape) / patch.size  # not mirror-symmetric

    def run(batch: np.ndarray) -> np.ndarray:
        return (batch * ramp)[:, :1]

    plain = mirrored_probabilities(run, patch, sigmoid_two_class, ())
    assert np.allclose(plain, sigmoid_two_class(run(patch[None, None])[0]))
    by_hand = np.mean([np.flip(sigmoid_two_class(run(np.flip(patch, a)[None, None].copy())[0]), tuple(i + 1 for i in a))
                       for a in ((), (2,))], axis=0)
    assert np.allclose(mirrored_probabilities(run, patch, sigmoid_two_class, (2,)), by_hand)
    assert not np.allclose(by_hand, plain)


def test_openvino_and_onnx_runtime_run_the_same_network_alike():
    pytest.importorskip("openvino")
    path = TEST_MODELS / "fast" / "liver.json"
    x = np.random.default_rng(1).normal(0, 0.3, size=(1, 1, 32, 48, 48)).astype(np.float32)
    ov = load_model_file(path, RuntimeConfig("cpu", 1, "openvino"))
    ort = load_model_file(path, RuntimeConfig("cpu", 1, "onnxruntime"))
    assert ov.engine.startswith("openvino") and ort.engine.startswith("onnxruntime")
    assert np.abs(ov.run(x) - ort.run(x)).max() < 1e-2
    assert ov.run(x[:, :, :16]).shape[2] == 16  # a new input shape recompiles


def test_without_openvino_auto_falls_back_and_an_explicit_request_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    assert resolve_cpu_engine("auto") == "onnxruntime"
    with pytest.raises(LiverTumorSegError, match="pip install openvino"):
        resolve_cpu_engine("openvino")
    with pytest.raises(LiverTumorSegError, match="unknown CPU engine"):
        resolve_cpu_engine("tensorrt")
