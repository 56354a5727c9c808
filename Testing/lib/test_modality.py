"""MR input: the modality travels with the input, the manifests say how each network takes it, MR is liver-only."""
from __future__ import annotations

import json
import locale
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LiverTumorSegLib import segment
from LiverTumorSegLib.cli import cli_words
from LiverTumorSegLib.config import DEFAULT_MODELS_DIR, InputCheckConfig, PostprocessConfig
from LiverTumorSegLib.errors import InvalidInputError, ModelError, NotCTError
from LiverTumorSegLib.io import read_image
from LiverTumorSegLib.manifest import ModelManifest, load_manifest, write_manifest
from LiverTumorSegLib.modality import (MR_LIVER_ONLY, dicom_modality, liver_gate, resolve_modality,
                                       threshold_at_half)
from LiverTumorSegLib.postprocess import implausible_liver
from LiverTumorSegLib.validation import check_input
from LiverTumorSegLib.windowing import RangeNormalization
from Testing.conftest import TEST_MODELS, phantom_ct
from Testing.model_fixtures import tiny_liver_model, tiny_tumor_model

PLS = DEFAULT_MODELS_DIR / "pyliverlesionseg"


def phantom_mr(size_xyz=(48, 40, 24), spacing=(2.0, 2.0, 6.0)) -> sitk.Image:
    """A small MR-like phantom (x, y, z sizes): no signal outside a body (200), a bright blob on the patient's right (400)."""
    x, y, z = size_xyz
    a = np.zeros((z, y, x), dtype=np.float32)
    a[2:-2, 6:-6, 4:-4] = 200.0
    a[4:-4, 10:-10, 6:x // 2] = 400.0  # low x = the patient's right in LPS
    img = sitk.GetImageFromArray(a)
    img.SetSpacing(spacing)
    return img


def write_dicom_series(image: sitk.Image, folder: Path, modality: str) -> Path:
    """`image` as a DICOM series of int16 slices whose Modality tag is `modality` (the process locale is restored:
    ITK's GDCM writer leaves it at "C", which turns later text reads to ASCII)."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        return _write_slices(image, folder, modality)
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write_slices(image: sitk.Image, folder: Path, modality: str) -> Path:
    """The slices of `write_dicom_series`."""
    folder.mkdir(parents=True)
    img = sitk.Cast(image, sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(img.GetDepth()):
        s = img[:, :, k]
        for tag, value in (("0008|0060", modality), ("0020|000e", "1.2.826.0.1.3680043.2.1125.1.42"),
                           ("0020|0013", str(k + 1)), ("0008|0018", f"1.2.826.0.1.3680043.2.1125.1.42.{k + 1}"),
                           ("0020|0032", "\\".join(map(str, img.TransformIndexToPhysicalPoint((0, 0, k))))),
                           ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0028|0030", "2\\2"), ("0018|0050", "6")):
            s.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(s)
    return folder


def mr_models(folder: Path) -> Path:
    """A models folder: the rule liver model told to accept MR (range-normalised onto a pseudo-HU scale, so that
    no signal is "air" and the body is "tissue") beside the rule tumor model, which accepts CT only."""
    tiny_tumor_model(folder)
    path = tiny_liver_model(folder)
    manifest = load_manifest(path)
    manifest.modalities = {"ct": {}, "mr": {"normalization": RangeNormalization(0, 100, 1.0, -1000.0, 1000.0).to_dict()}}
    return write_manifest(manifest, folder / manifest.onnx_file).parent


def test_range_normalization_maps_the_lowest_80_percent_of_the_range_onto_plus_minus_half():
    norm = RangeNormalization()  # pyliverlesionseg's MR normalisation
    x = np.array([0.0, 40.0, 80.0, 100.0])
    np.testing.assert_allclose(norm(x), [-0.5, 0.0, 0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(RangeNormalization(0, 100, 1.0)(np.array([10.0, 20.0])), [-0.5, 0.5])


def test_manifests_say_which_modalities_each_network_accepts_and_how_to_normalise_them():
    liver, tumor = load_manifest(PLS / "liver.json"), load_manifest(PLS / "tumor.json")
    assert liver.accepts("ct") and liver.accepts("mr") and tumor.accepts("ct") and not tumor.accepts("mr")
    assert isinstance(liver.input_for("mr").normalization, RangeNormalization)
    assert liver.input_for("ct").normalization == liver.normalization
    with pytest.raises(ModelError, match="does not accept MR"):
        tumor.input_for("mr")
    again = ModelManifest.from_json(liver.to_json())
    assert again.modalities == liver.modalities and again.input_for("mr") == liver.input_for("mr")
    for fast in ("liver", "tumor"):  # the project's own networks never saw an MR
        assert not load_manifest(TEST_MODELS / "fast" / f"{fast}.json").accepts("mr")


def test_dicom_series_carries_its_modality_tag_and_an_mr_series_is_segmented_as_mr(tmp_path):
    folder = write_dicom_series(phantom_mr(), tmp_path / "mr", "MR")
    image = read_image(folder)
    assert dicom_modality(image) == "MR" and resolve_modality(None, image) == ("mr", [])
    result = segment(folder, threads=1, models_dir=mr_models(tmp_path / "models"))  # no modality given
    assert result.modality == "mr" and result.labels.any()


def test_asked_modality_wins_over_the_dicom_tag_with_a_warning():
    image = phantom_mr()
    image.SetMetaData("0008|0060", "CT")
    modality, warnings = resolve_modality("MR", image)
    assert modality == "mr" and "DICOM Modality tag says CT" in warnings[0]
    assert resolve_modality(None, phantom_mr()) == ("ct", [])  # a file without tags is CT unless told
    with pytest.raises(InvalidInputError, match="unknown modality 'pet'"):
        resolve_modality("pet", image)


def test_ct_given_as_mr_gets_a_plausibility_warning_and_an_mr_none():
    ct, mr = phantom_ct(), phantom_mr()
    warned = check_input(ct, sitk.GetArrayViewFromImage(ct), InputCheckConfig(), "mr")
    assert len(warned) == 1 and "looks like CT in Hounsfield units" in warned[0]
    assert check_input(mr, sitk.GetArrayViewFromImage(mr), InputCheckConfig(), "mr") == []


def test_mr_given_as_ct_is_refused_with_the_modality_option_named():
    mr = phantom_mr()
    with pytest.raises(NotCTError) as exc:
        check_input(mr, sitk.GetArrayViewFromImage(mr), InputCheckConfig(), "ct")
    assert "--modality mr" in cli_words(str(exc.value))


def test_mr_liver_gate_keeps_a_liver_in_the_body_and_refuses_one_in_the_background():
    values = sitk.GetArrayFromImage(phantom_mr())
    gate = liver_gate("mr", values, PostprocessConfig())
    liver, air = values == 400, values == 0
    args = (values, 8.0 / 1000 * 3, gate.min_ml, gate.median_range, 0.65, gate.body, gate.unit)
    assert implausible_liver(liver, *args) is None
    assert "outside liver tissue" in implausible_liver(air, *args)


def test_threshold_at_half_moves_the_cut_and_keeps_the_ends():
    p = np.array([0.0, 0.1, 0.3, 0.31, 1.0], dtype=np.float32)
    q = threshold_at_half(p, 0.3)
    np.testing.assert_allclose(q[[0, 2, 4]], [0.0, 0.5, 1.0], atol=1e-6)
    assert list(q > 0.5) == list(p > 0.3) and threshold_at_half(p, 0.5) is p


def test_mr_is_liver_only_and_every_output_says_so(tmp_path):
    result = segment(phantom_mr(), modality="mr", threads=1, models_dir=mr_models(tmp_path / "models"))
    assert result.modality == "mr" and result.summary()["modality"] == "mr"
    assert result.labels.any() and not (result.labels == 2).any() and "tumor" not in result.models
    assert MR_LIVER_ONLY in result.warnings


def test_a_liver_network_that_takes_no_mr_refuses_it_clearly(tmp_path):
    with pytest.raises(ModelError, match="does not accept MR input"):
        segment(phantom_mr(), modality="mr", threads=1, model_set="fast")


@pytest.mark.slow
def test_cli_segments_a_real_mr_liver_with_modality_mr(shared_data, tmp_path):
    """One real CHAOS T2-SPIR MR (held-out patient p08, measured Dice 0.872) through `predict --modality mr`."""
    from LiverTumorSegLib.cli import main
    from LiverTumorSegLib.metrics import dice

    case = shared_data / "chaos_mr_t2" / "p08"
    assert main(["predict", str(case / "mr.nii.gz"), "-o", str(tmp_path), "--modality", "mr", "--threads", "1",
                 "--model-set", "pyliverlesionseg"]) == 0
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "mr_seg.nii.gz")))
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "organs.nii.gz"))) == 1
    assert not (labels == 2).any() and dice(labels > 0, ref) > 0.85
    report = json.loads((tmp_path / "mr_lesions.json").read_text())
    assert report["modality"] == "mr" and MR_LIVER_ONLY in report["warnings"]


def test_cli_refuses_mr_with_a_model_set_that_takes_no_mr_before_any_case_runs(tmp_path, capsys):
    from LiverTumorSegLib.cli import main

    path = tmp_path / "mr.nii.gz"
    sitk.WriteImage(phantom_mr(), str(path))
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(path), "-o", str(tmp_path / "out"), "--modality", "mr", "--model-set", "fast"])
    assert exc.value.code == 2 and "does not accept MR input" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_info_says_which_modalities_each_network_accepts(capsys):
    from LiverTumorSegLib.cli import main

    assert main(["info", "-v"]) == 0  # the model details are in the long listing
    out = capsys.readouterr().out
    assert "pyliverlesionseg-liver 0.3" in out and "accepts CT, MR" in out and "pyliverlesionseg-lesion" in out
    lesion_line = next(line for line in out.splitlines() if "pyliverlesionseg-lesion" in line)
    assert lesion_line.endswith("accepts CT")
