"""HU window presets, model normalisation and manifest checksums."""
import numpy as np
import pytest

from LiverTumorSegLib.errors import ModelError
from LiverTumorSegLib.manifest import ModelManifest, load_manifest, verified_onnx_path, write_manifest
from LiverTumorSegLib.windowing import PRESETS, Normalization, apply_window


def test_liver_window_maps_its_bounds_to_black_and_white():
    p = PRESETS["liver"]
    out = apply_window(np.array([p.lower - 100, p.lower, p.level, p.upper, p.upper + 100]), "liver")
    np.testing.assert_allclose(out, [0, 0, 0.5, 1, 1])


def test_normalization_clips_then_standardises():
    n = Normalization(-100, 200, 50, 10)
    np.testing.assert_allclose(n(np.array([-1000, 50, 60, 5000])), [-15, 0, 1, 15])
    assert Normalization.from_dict(n.to_dict()) == n


def _manifest() -> ModelManifest:
    return ModelManifest(name="t", stage="liver", version="1", onnx_file="", sha256="", classes={0: "background", 1: "liver"},
                         spacing=(3.0, 3.0, 3.0), patch_size=(32, 64, 64), normalization=Normalization(-200, 300, 0, 1))


def test_manifest_round_trips_through_json_with_checksum(tmp_path):
    onnx = tmp_path / "liver.onnx"
    onnx.write_bytes(b"not really a model")
    path = write_manifest(_manifest(), onnx)
    m = load_manifest(path)
    assert m.classes == {0: "background", 1: "liver"} and m.patch_size == (32, 64, 64)
    assert verified_onnx_path(path, m) == onnx
    assert m.class_index("liver") == 1
    with pytest.raises(ModelError, match="no class 'tumor'"):
        m.class_index("tumor")


def test_tampered_or_missing_model_file_is_refused(tmp_path):
    onnx = tmp_path / "liver.onnx"
    onnx.write_bytes(b"original bytes")
    path = write_manifest(_manifest(), onnx)
    onnx.write_bytes(b"original bytez")
    with pytest.raises(ModelError, match="does not match its manifest checksum"):
        verified_onnx_path(path, load_manifest(path))
    onnx.unlink()
    with pytest.raises(ModelError, match="model file missing"):
        verified_onnx_path(path, load_manifest(path))


def test_malformed_manifest_is_refused(tmp_path):
    bad = tmp_path / "liver.json"
    bad.write_text("{\"name\": 1}")
    with pytest.raises(ModelError, match="malformed"):
        load_manifest(bad)
    with pytest.raises(ModelError, match="not found"):
        load_manifest(tmp_path / "nope.json")
