"""The shipped pyliverlesionseg port against the ORIGINAL Keras networks, without TensorFlow.

`Testing/data/pyliverlesionseg_parity.npz` holds two small real CT blocks (HU, int16; a liver block of
chaos_ct3 at 3 mm and a liver-masked block of lits117_roi at 1 x 1 x 3 mm) and what the original networks
output on them (run by ../shared/tools/pyliverlesionseg-original with float64 mean/std, and in plain TF
float32), made by `python -m Training.pretrained.parity` + `keras_reference.py`. The shipped ONNX files
must reproduce the figures recorded in their manifests, and the PyTorch rebuild from the published wheel
must match the original to float64 precision (that is the architecture check).
"""
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from LiverTumorSegLib.config import DEFAULT_MODELS_DIR
from LiverTumorSegLib.manifest import load_manifest, verified_onnx_path
from LiverTumorSegLib.sliding_window import sigmoid_two_class

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "pyliverlesionseg_parity.npz"
SET_DIR = DEFAULT_MODELS_DIR / "pyliverlesionseg"
BLOCKS = {"liver": "liver_small__chaos_ct3", "tumor": "tumor_small__lits117_roi"}
PARITY_GOAL = 1e-3  # issue 9: largest probability difference of the port


@pytest.fixture(scope="module")
def fixture():
    return dict(np.load(FIXTURE))


def _onnx_probability(stage: str, hu: np.ndarray) -> tuple[np.ndarray, dict]:
    """Sigmoid output of the shipped ONNX file for an HU block, normalised as its manifest says."""
    path = SET_DIR / f"{stage}.json"
    manifest = load_manifest(path)
    sess = ort.InferenceSession(str(verified_onnx_path(path, manifest)), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"image": manifest.normalization(hu)[None, None]})[0][0]
    return sigmoid_two_class(logits)[1], manifest.metrics["parity_with_original"]


@pytest.mark.parametrize("stage", ["liver", "tumor"])
def test_shipped_onnx_reproduces_its_recorded_parity_with_the_original(fixture, stage):
    key = BLOCKS[stage]
    ours, recorded = _onnx_probability(stage, fixture[key])
    fresh = float(np.abs(ours - fixture[f"{key}__original_f64stats"]).max())
    expected = recorded["blocks"][key]["onnx_vs_original_float64_statistics"]["max_abs_probability_diff"]
    assert fresh == pytest.approx(expected, rel=0.1, abs=2e-5), "the manifest's parity figure is not what the file does"
    disagree = float(np.mean((ours > 0.5) != (fixture[f"{key}__original_f64stats"] > 0.5)))
    assert disagree <= 1e-3
    assert recorded["port_float64_max_abs_probability_diff"] <= PARITY_GOAL


def test_rebuilt_networks_match_the_original_to_float64_precision(fixture, tmp_path):
    torch = pytest.importorskip("torch")
    from Training.pretrained.parity import torch_float64
    from Training.pretrained.pyliverlesionseg import download_wheel

    wheel = download_wheel(Path(__file__).resolve().parents[2] / "Training" / ".cache" / "pretrained")
    torch.set_num_threads(2)
    ours = torch_float64({k: fixture[k] for k in BLOCKS.values()}, wheel)
    for key in BLOCKS.values():
        assert np.abs(ours[key] - fixture[f"{key}__original_f64stats"]).max() <= PARITY_GOAL
