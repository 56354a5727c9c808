"""The public API on real CT with the shipped models: grids, options, progress, cancel, bad models."""
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

import LiverTumorSegLib as lts
from LiverTumorSegLib.config import RuntimeConfig, models_dir
from LiverTumorSegLib.errors import LiverTumorSegError, ModelError
from LiverTumorSegLib.geometry import same_grid
from LiverTumorSegLib.io import read_image
from LiverTumorSegLib.runtime import available_devices, load_model

from .test_geometry import OBLIQUE


@pytest.fixture(scope="module")
def ct(shared_data) -> sitk.Image:
    """The small real abdominal CT (3 mm)."""
    return read_image(shared_data / "totalseg_example/ct.nii.gz")


@pytest.fixture(scope="module")
def result(ct) -> lts.SegmentationResult:
    return lts.segment(ct, device="cpu")


def _with_geometry(ct: sitk.Image, spacing, direction, origin=(12.0, -40.0, 300.0)) -> sitk.Image:
    img = sitk.Image(ct)
    img.SetSpacing(spacing); img.SetDirection(direction); img.SetOrigin(origin)
    return img


def test_shipped_models_exist_and_verify():
    from LiverTumorSegLib.manifest import load_manifest, verified_onnx_path
    from LiverTumorSegLib.model_sets import list_model_sets

    for mset in list_model_sets(models_dir()):
        for path in (mset.liver, mset.tumor):
            assert verified_onnx_path(path, load_manifest(path)).is_file(), f"{mset.name}: {path} does not verify"
    for stage in ("liver", "tumor"):  # the fast set's networks run a patch (the default set's: test_pretrained_parity)
        model = load_model(models_dir() / "fast", stage, RuntimeConfig(device="cpu"))  # checksum verified on load
        m = model.manifest
        assert m.stage == stage and stage in m.classes.values() and m.classes[0] == "background"
        logits = model.run(np.zeros((1, 1, *m.patch_size), np.float32))
        assert logits.shape == (1, len(m.classes), *m.patch_size) and np.isfinite(logits).all()


def test_output_lands_on_the_input_grid_of_a_real_ct(ct, result):
    assert result.labels.dtype == np.uint8 and result.labels.shape == ct.GetSize()[::-1]
    assert same_grid(result.label_image(), ct)
    assert set(np.unique(result.labels)) <= {0, 1, 2}
    assert result.liver_volume_ml > 500, "no plausible liver found in a real abdominal CT"


@pytest.mark.parametrize("spacing,direction", [
    ((2.1, 3.4, 2.7), OBLIQUE),
    ((3.0, 3.0, 3.0), (1, 0, 0, 0, -1, 0, 0, 0, -1)),  # mirrored: negative determinant
])
def test_output_lands_on_input_grid_for_oblique_and_mirrored_ct(ct, spacing, direction):
    img = _with_geometry(ct, spacing, tuple(float(d) for d in direction))
    res = lts.segment(img, device="cpu", model_set="fast")
    assert same_grid(res.label_image(), img)


def test_odd_sized_crop_keeps_its_grid(ct):
    img = ct[3:100, 5:88, 1:30]
    res = lts.segment(img, device="cpu", liver_only=True)
    assert same_grid(res.label_image(), img) and res.labels.shape == (29, 83, 97)


def test_flipping_storage_order_does_not_move_the_liver(ct, result):
    flipped = sitk.Flip(ct, [True, False, False])  # same physical image, x stored the other way
    res = lts.segment(flipped, device="cpu")
    back = sitk.Resample(res.label_image(), ct, sitk.Transform(), sitk.sitkNearestNeighbor)
    a, b = sitk.GetArrayViewFromImage(back) > 0, result.labels > 0
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.95


def test_volume_input_gives_the_same_labels_as_an_image(ct, result):
    res = lts.segment(lts.Volume.from_sitk(ct), device="cpu")
    np.testing.assert_array_equal(res.labels, result.labels)


def test_liver_only_has_no_tumor_and_huge_min_lesion_drops_all(ct):
    assert not (lts.segment(ct, liver_only=True).labels == 2).any()
    res = lts.segment(ct, min_lesion_mm3=1e9)
    assert not (res.labels == 2).any() and res.lesions == []


def test_progress_runs_from_zero_to_one_through_every_stage(ct):
    seen = []
    lts.segment(ct, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    text = " ".join(m for _, m in seen)
    for stage in ("reading", "liver", "tumor", "lesions", "done"):
        assert stage in text


def test_no_liver_gives_an_empty_label_map_and_says_so():
    a = np.full((40, 80, 80), -1000, np.int16)
    zz, yy, xx = np.mgrid[:40, :80, :80]
    a[((yy - 40) ** 2 + (xx - 40) ** 2) < 30 ** 2] = -100  # a cylinder of fat: no organ at all
    img = sitk.GetImageFromArray(a); img.SetSpacing((3.0, 3.0, 3.0))
    res = lts.segment(img)
    assert not res.labels.any() and res.lesions == [] and res.tumor_burden_percent == 0.0
    assert any("no liver" in w for w in res.warnings)


def _copy_models(tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(models_dir() / "fast", folder, ignore=shutil.ignore_patterns("__*"))
    return folder


def test_tampered_model_is_refused(ct, tmp_path):
    folder = _copy_models(tmp_path)
    data = bytearray((folder / "tumor.onnx").read_bytes()); data[-10] ^= 0xFF
    (folder / "tumor.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum"):
        lts.segment(ct, models_dir=folder)


def test_missing_model_is_refused_and_env_override_is_used(ct, tmp_path, monkeypatch):
    folder = _copy_models(tmp_path)
    (folder / "liver.onnx").unlink()
    monkeypatch.setenv("LIVERTUMORSEG_MODELS_DIR", str(folder))
    with pytest.raises(ModelError, match="model file missing"):
        lts.segment(ct)


def test_cuda_request_without_cuda_is_a_clear_error(ct):
    if "cuda" in available_devices():
        pytest.skip("this machine has CUDA")
    with pytest.raises(LiverTumorSegError, match="CUDA requested"):
        lts.segment(ct, device="cuda")


def test_a_session_that_fell_back_from_cuda_reports_the_cpu(caplog):
    from LiverTumorSegLib.runtime import session_device

    class FellBack:  # what ONNX Runtime returns when its CUDA provider fails to start: a CPU-only session
        def get_providers(self):
            return ["CPUExecutionProvider"]

    class OnGpu:
        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    assert session_device(FellBack(), "cuda") == "cpu" and "could not start its CUDA provider" in caplog.text
    assert session_device(OnGpu(), "cuda") == "cuda"
    assert session_device(FellBack(), "cpu") == "cpu"
