"""The Slicer logic on a real CT with a known lesion and the tiny rule tumor model: the same lesion as the
library and the command line report, in segments, the lesion table, the summary and the batch files."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

import slicer
from LiverTumorSegLib import segment
from LiverTumorSegLib.cli import main
from LiverTumorSegLib.config import MODELS_DIR_ENV
from LiverTumorSegLib.io import read_image
from LiverTumorSegLib.runtime import Model
from LiverTumorSegLogic import RunOptions

from ..model_fixtures import deep_liver_index, insert_lesion, models_folder
from .mrml_helpers import exported_labels


@pytest.fixture(scope="module")
def lesion_ct(shared_data, tmp_path_factory):
    """The 3 mm real CT with a 12 mm lesion at its deepest liver voxel, saved as NRRD, and the Lesion."""
    folder = shared_data / "totalseg_example"
    ct = read_image(folder / "ct.nii.gz")
    index = deep_liver_index(sitk.ReadImage(str(folder / "liver_reference.nii.gz")))
    lesion = insert_lesion(ct, ct.TransformIndexToPhysicalPoint(index), 12.0)
    path = tmp_path_factory.mktemp("slicer_lesion") / "lesion_ct.nrrd"
    sitk.WriteImage(lesion.image, str(path))
    return path, lesion


@pytest.fixture
def tiny_models(tmp_path, monkeypatch):
    """The rule liver + tumor models, made the library's models folder (as Slicer users do via the env var)."""
    folder = models_folder(tmp_path / "models", liver="tiny")
    monkeypatch.setenv(MODELS_DIR_ENV, str(folder))
    return folder


def _table(tableNode) -> list[dict]:
    """The lesion table node's rows as dicts of floats."""
    names = [tableNode.GetColumnName(i) for i in range(tableNode.GetNumberOfColumns())]
    return [{n: tableNode.GetTable().GetValueByName(r, n).ToDouble() for n in names} for r in range(tableNode.GetNumberOfRows())]


def test_slicer_logic_reports_the_lesion_as_the_library_does(headless, logic, lesion_ct, tiny_models):
    path, lesion = lesion_ct
    library = segment(read_image(path), device="cpu")
    assert len(library.lesions) == 1 and (library.labels[lesion.within(9.0)] == 2).all(), "the library finds the lesion"
    volumeNode = slicer.util.loadVolume(str(path))
    segmentationNode = logic.process(volumeNode, device="cpu")
    assert np.array_equal(exported_labels(segmentationNode, volumeNode), library.labels)
    (row,) = _table(logic.lesionTableNode(segmentationNode))
    assert row == pytest.approx({k: float(v) for k, v in library.lesions[0].row().items()})
    centroid = logic.lesionCentroid(segmentationNode, 1, volumeNode)
    np.testing.assert_allclose(centroid, library.lesions[0].centroid_ras, atol=0.006)  # the table holds 2 decimals
    np.testing.assert_allclose(centroid, lesion.center_lps * [-1, -1, 1], atol=1.5)
    summary = logic.resultSummary(segmentationNode)
    assert summary["lesions"] == "1" and summary["tumor_slice_ranges"] == str(library.tumor_slice_ranges())


def test_slicer_result_has_the_per_slice_flags(logic, lesion_ct, tiny_models):
    path, lesion = lesion_ct
    result = logic.segmentVolume(read_image(path))
    flagged = {k for k, c in enumerate(result.slice_classes()) if c == "Tumor"}
    assert set(np.flatnonzero(lesion.within(9.0).any(axis=(1, 2)))) <= flagged <= set(lesion.slices) | {min(lesion.slices) - 1, max(lesion.slices) + 1}


def test_slicer_batch_and_cli_write_the_same_lesion(headless, logic, lesion_ct, tiny_models, tmp_path):
    path, _ = lesion_ct
    steps = []
    (report,) = logic.processFiles([path], tmp_path / "slicer", progress=lambda f, m: steps.append(m))
    assert report.status == "done" and report.summary["lesions"] == 1 and report.seconds >= 0
    assert steps and all(m.startswith("lesion_ct (1/1): ") for m in steps)
    assert main(["predict", str(path), "-o", str(tmp_path / "cli"), "--models-dir", str(tiny_models)]) == 0
    with open(report.lesionsFile, newline="") as f:
        slicer_rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    cli_rows = json.loads((tmp_path / "cli" / "lesion_ct_lesions.json").read_text())["lesions"]
    assert len(slicer_rows) == 1 and slicer_rows[0] == pytest.approx({k: float(v) for k, v in cli_rows[0].items()})
    seg = sitk.GetArrayFromImage(sitk.ReadImage(report.segmentationFile))  # (z, y, x, layer): the segments overlap
    cli = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "cli" / "lesion_ct_seg.nii.gz")))
    assert seg.shape == cli.shape + (2,), "Liver (with its tumors) and Liver tumor overlap, so they take two layers"
    assert np.array_equal(seg[..., 0] > 0, cli > 0) and np.array_equal(seg[..., 1] > 0, cli == 2)


def test_slicer_liver_only_never_calls_the_tumor_model(logic, lesion_ct, tiny_models):
    # The engine runs in another process, so calls cannot be counted here: the tumor model is made unloadable
    # (checksum mismatch) instead; a liver-only run must not notice, a full run must.
    from LiverTumorSegLib.errors import ModelError

    path, _ = lesion_ct
    onnx = tiny_models / "tumor.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    result = logic.segmentVolume(read_image(path), options=RunOptions(liverOnly=True))
    assert not (result.labels == 2).any() and result.lesions == [] and (result.labels == 1).any()
    with pytest.raises(ModelError, match="checksum"):
        logic.segmentVolume(read_image(path), options=RunOptions())


def test_slicer_min_lesion_above_its_volume_removes_it(headless, logic, lesion_ct, tiny_models):
    path, lesion = lesion_ct
    volume_mm3 = lesion.mask.sum() * float(np.prod(lesion.image.GetSpacing()))
    volumeNode = slicer.util.loadVolume(str(path))
    kept = logic.process(volumeNode, minLesionMm3=volume_mm3 / 2)
    dropped = logic.process(volumeNode, minLesionMm3=volume_mm3 * 2)
    assert logic.lesionTableNode(kept).GetNumberOfRows() == 1
    assert logic.lesionTableNode(dropped).GetNumberOfRows() == 0
    assert not (exported_labels(dropped, volumeNode) == 2).any() and (exported_labels(kept, volumeNode) == 2).any()
