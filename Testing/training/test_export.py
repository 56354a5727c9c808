"""Export: ONNX with the cascade's contract, parity with PyTorch on real data, manifest, install."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from LiverTumorSegLib.manifest import load_manifest, verified_onnx_path
from Training import export, train

from .tiny import tiny_overrides

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_checkpoint(shared_data: Path, tmp_path_factory) -> Path:
    """A 1-epoch tiny liver model."""
    tmp = tmp_path_factory.mktemp("export")
    out = tmp / "run"
    train.main(["--config", str(REPO / "Training/configs/liver.yaml"),
                *tiny_overrides(shared_data, out, tmp / "cache", epochs=1, iters=1)])
    return out / "last.pt"


def test_export_installs_a_model_the_library_accepts(tiny_checkpoint: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    rc = export.main(["--checkpoint", str(tiny_checkpoint), "--out-dir", str(tmp_path / "out"), "--install",
                      "--models-dir", str(models), "--training-command", "pytest tiny run", "--threads", "1"])
    assert rc == 0
    manifest = load_manifest(models / "liver.json")
    assert manifest.stage == "liver" and manifest.classes == {0: "background", 1: "liver"}
    assert manifest.patch_size == (16, 32, 32) and manifest.training_command == "pytest tiny run"
    assert manifest.metrics["export_parity"]["relative_logit_diff"] <= export.PARITY_TOLERANCE
    onnx_path = verified_onnx_path(models / "liver.json", manifest)  # checksum matches
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"] and [o.name for o in sess.get_outputs()] == ["logits"]
    for shape in [(1, 1, 16, 32, 32), (2, 1, 8, 12, 20)]:  # dynamic batch and spatial axes (multiples of 4)
        out = sess.run(["logits"], {"image": np.zeros(shape, np.float32)})[0]
        assert out.shape == (shape[0], 2, *shape[2:])


def test_parity_is_measured_on_real_ct(tiny_checkpoint: Path, tmp_path: Path) -> None:
    model, cfg = export.model_from_checkpoint(tiny_checkpoint)
    inputs = export.parity_inputs(cfg, model.multiple)
    assert inputs[0].shape == (1, 1, 16, 32, 32) and inputs[0].std() > 0.1  # real tissue, not zeros
    path = export.export_onnx(model, cfg.stage.patch_size, tmp_path / "liver.onnx")
    par = export.parity(model, path, inputs)
    assert par["max_abs_logit_diff"] <= export.PARITY_TOLERANCE * par["max_abs_logit"]
    assert par["max_abs_probability_diff"] <= export.PROBABILITY_TOLERANCE and par["argmax_disagreement_fraction"] < 1e-3


def test_failed_parity_writes_no_manifest(tiny_checkpoint: Path, tmp_path: Path) -> None:
    rc = export.main(["--checkpoint", str(tiny_checkpoint), "--out-dir", str(tmp_path), "--tolerance", "-1"])
    assert rc == 1 and not (tmp_path / "liver.json").exists()
