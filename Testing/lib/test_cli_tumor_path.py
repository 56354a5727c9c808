"""The command line on a CT with a known lesion: --models-dir, --min-lesion-mm3, --device, DICOM input, and the
same answer as the Python API."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

import LiverTumorSegLib as lts
from LiverTumorSegLib.cli import main
from LiverTumorSegLib.io import read_image
from LiverTumorSegLib.runtime import available_devices

from ..training.conftest import write_dicom_series
from .test_tumor_path import lesion_on, real_ct, tiny_models  # noqa: F401  (module fixtures)


@pytest.fixture(scope="module")
def lesion_file(real_ct, tmp_path_factory):
    """The real CT with the lesion, saved as NIfTI, and the Lesion."""
    lesion = lesion_on(real_ct, "oblique")
    path = tmp_path_factory.mktemp("cases") / "case.nii.gz"
    sitk.WriteImage(lesion.image, str(path))
    return path, lesion


def _run(args: list[str]) -> int:
    """`livertumorseg` with `args`."""
    return main([str(a) for a in args])


def _outputs(folder, case: str) -> tuple[np.ndarray, dict, list[dict]]:
    """(label array, lesion JSON, lesion CSV rows) the CLI wrote for `case`."""
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}_seg.nii.gz")))
    with open(folder / f"{case}_lesions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return labels, json.loads((folder / f"{case}_lesions.json").read_text()), rows


def test_cli_and_api_report_the_lesion_the_same_way(lesion_file, tiny_models, tmp_path):
    path, lesion = lesion_file
    assert _run(["predict", path, "-o", tmp_path, "--models-dir", tiny_models, "--device", "cpu"]) == 0
    labels, table, rows = _outputs(tmp_path, "case")
    api = lts.segment(read_image(path), device="cpu", models_dir=tiny_models)
    assert api.lesions and (api.labels[lesion.mask] == 2).mean() > 0.9, "the API sees the lesion"
    np.testing.assert_array_equal(labels, api.labels)
    assert table["lesions"] == [json.loads(json.dumps(found.row())) for found in api.lesions]
    assert [float(r["volume_ml"]) for r in rows] == [found.volume_ml for found in api.lesions]
    assert table["slice_classes"] == api.slice_classes() and table["tumor_slice_ranges"] == api.tumor_slice_ranges()
    assert table["lesions"][0]["centroid_R_ras"] == pytest.approx(-lesion.center_lps[0], abs=1.5)
    assert table["device"] == "cpu" and table["slices_with_tumor"] == int(api.slice_has_tumor.sum()) > 0


def test_cli_min_lesion_mm3_above_the_lesion_volume_drops_it(lesion_file, tiny_models, tmp_path):
    path, lesion = lesion_file
    volume_mm3 = lesion.mask.sum() * float(np.prod(lesion.image.GetSpacing()))
    assert _run(["predict", path, "-o", tmp_path / "keep", "--models-dir", tiny_models, "--min-lesion-mm3", volume_mm3 / 2]) == 0
    assert _run(["predict", path, "-o", tmp_path / "drop", "--models-dir", tiny_models, "--min-lesion-mm3", volume_mm3 * 2]) == 0
    assert len(_outputs(tmp_path / "keep", "case")[1]["lesions"]) == 1
    labels, table, rows = _outputs(tmp_path / "drop", "case")
    assert table["lesions"] == [] and rows == [] and not (labels == 2).any() and set(table["slice_classes"]) == {"Sane"}


def test_cli_models_dir_is_the_one_used(lesion_file, tmp_path, capsys):
    path, _ = lesion_file
    empty = tmp_path / "no_models"; empty.mkdir()
    with pytest.raises(SystemExit) as exit_:  # a usage error, found before any case runs
        _run(["predict", path, "-o", tmp_path / "out", "--models-dir", empty])
    assert exit_.value.code == 2
    assert f"no models in {empty}" in capsys.readouterr().err and not (tmp_path / "out" / "case_seg.nii.gz").exists()


def test_cli_device_cuda_without_cuda_fails_the_case_clearly(lesion_file, tiny_models, tmp_path, capsys):
    if "cuda" in available_devices():
        pytest.skip("this machine has CUDA")
    path, _ = lesion_file
    with pytest.raises(SystemExit) as exit_:  # a usage error, found before any case runs
        _run(["predict", path, "-o", tmp_path / "out", "--models-dir", tiny_models, "--device", "cuda"])
    assert exit_.value.code == 2
    assert "CUDA requested" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_cli_reads_a_dicom_series_folder_with_the_lesion(lesion_file, tiny_models, tmp_path):
    path, lesion = lesion_file
    folder = write_dicom_series(lesion.image, tmp_path / "patient7", "1.2.826.0.1.3680043.2.1125.77")
    assert _run(["predict", folder, "-o", tmp_path / "out", "--models-dir", tiny_models, "--format", "seg.nrrd"]) == 0
    seg = sitk.ReadImage(str(tmp_path / "out" / "patient7.seg.nrrd"))
    dicom = read_image(folder)
    assert seg.GetSize() == dicom.GetSize() and np.allclose(seg.GetDirection(), dicom.GetDirection(), atol=1e-5)
    labels = sitk.GetArrayFromImage(seg)
    assert (labels[lesion.within(6.0)] == 2).all(), "the lesion read through DICOM is labelled tumor"
    np.testing.assert_array_equal(labels, lts.segment(dicom, device="cpu", models_dir=tiny_models).labels)
    table = json.loads((tmp_path / "out" / "patient7_lesions.json").read_text())
    assert len(table["lesions"]) == 1 and table["input"] == str(folder)
