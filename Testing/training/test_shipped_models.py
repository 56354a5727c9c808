"""The shipped default model set reproduces the numbers recorded for it on the shared data.

Those numbers (Training/results/model_sets/<set>/metrics.json, made by `python -m Training.evaluate_model_sets`)
are what the model card and `sets.json` quote; a better model passes (quality floors: test_accurate_set.py).
The cases are the ones the suite segments anyway (`default_set_results`, shared with test_accurate_set.py). A skipped test here fails the run
(Testing/conftest.py): a test of the shipped models that cannot run protects nothing.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from LiverTumorSegLib.config import DEFAULT_MODELS_DIR
from LiverTumorSegLib.model_sets import list_model_sets
from LiverTumorSegLib.runtime import verified_manifest
from Training.evaluate_model_sets import lesions_found, liver_scores

from .conftest import DEFAULT_SET_CASES

pytestmark = pytest.mark.shipped_models
RESULTS = Path(__file__).resolve().parents[2] / "Training" / "results" / "model_sets"
TOLERANCE = 0.01  # absolute, on Dice: ONNX Runtime thread-count jitter only
VOLUME_TOLERANCE = 0.01  # relative, on volumes (ml)


def _default_set():
    """The shipped models folder's default set."""
    return list_model_sets(DEFAULT_MODELS_DIR)[0]


def _recorded() -> dict[str, dict]:
    """The default set's recorded rows, by case."""
    path = RESULTS / _default_set().name / "metrics.json"
    assert path.is_file(), f"no recorded metrics for the shipped default set: {path}"
    return {row["case"]: row for row in json.loads(path.read_text())}


def test_the_default_set_is_shipped_whole_and_has_recorded_metrics_for_the_tested_cases():
    mset = _default_set()
    assert mset.default and mset.tumor is not None
    for stage, path in (("liver", mset.liver), ("tumor", mset.tumor)):
        verified_manifest(path, stage)  # present, and its ONNX file matches its checksum
    assert set(DEFAULT_SET_CASES) <= set(_recorded())


def _measured(case: str, result, ref: np.ndarray | None, ct) -> dict:
    """This run's values of the recorded keys of `case` (Training.evaluate_model_sets' own scoring)."""
    row = {"liver_ml": round(result.liver_volume_ml, 1), "tumor_ml": round(result.tumor_volume_ml, 2)}
    if case == "totalseg_ct":
        row |= liver_scores(result.labels, ref, ct.GetSpacing())
    if case == "lits117_roi_given_liver":
        from LiverTumorSegLib.metrics import dice

        found, total = lesions_found(result.labels == 2, ref == 2, float(np.prod(ct.GetSpacing())) / 1000)
        row |= {"tumor_dice": round(float(dice(result.labels == 2, ref == 2)), 4), "lesions_ge_0_5ml_found": found,
                "lesions_ge_0_5ml": total}
    return row


@pytest.mark.slow
@pytest.mark.parametrize("case", DEFAULT_SET_CASES)
def test_the_default_set_reproduces_its_recorded_metrics(case: str, default_set_results) -> None:
    recorded, measured = _recorded()[case], _measured(case, *default_set_results(case))
    for key, got in measured.items():
        want = recorded[key]
        if key.endswith("_dice"):
            assert got >= want - TOLERANCE, f"{case} {key}: {got:.4f}, recorded {want:.4f}"
        elif key.endswith("_ml"):
            assert abs(got - want) <= max(VOLUME_TOLERANCE * want, 0.5), f"{case} {key}: {got} ml, recorded {want} ml"
        else:
            assert got >= want - 1 if key.endswith("_found") else got == want, f"{case} {key}: {got}, recorded {want}"


def test_a_skipped_test_of_the_shipped_models_fails_the_run():
    from _pytest.reports import TestReport

    from ..conftest import fail_skipped_shipped_model_test

    class Item:
        def __init__(self, marked: bool):
            self.marked = marked

        def get_closest_marker(self, name):
            return object() if self.marked and name == "shipped_models" else None

    reports = {}
    for marked in (True, False):
        reports[marked] = TestReport("t", ("t.py", 0, "t"), {}, "skipped", ("t.py", 1, "Skipped: no shipped liver model"), "setup")
        fail_skipped_shipped_model_test(Item(marked), reports[marked])
    assert reports[True].failed and "no shipped liver model" in str(reports[True].longrepr)
    assert reports[False].skipped  # other tests may still skip (e.g. without CUDA)


def test_the_importer_writes_the_inference_settings_that_ship():
    """A re-import must reproduce the shipped pipeline: every field inference reads, compared with the shipped
    manifests (provenance, checksums and measured metrics aside)."""
    import json

    from LiverTumorSegLib.config import DEFAULT_MODELS_DIR
    from LiverTumorSegLib.manifest import ModelManifest
    from Training.import_pretrained import lesion_manifest, liver_manifest

    for build, name in ((liver_manifest, "liver"), (lesion_manifest, "tumor")):
        text = (DEFAULT_MODELS_DIR / "pyliverlesionseg" / f"{name}.json").read_text()
        shipped = json.loads(ModelManifest.from_json(text).to_json())  # defaults written out
        built = json.loads(build(shipped["credit"], tuple(shipped["spacing"])).to_json())
        for key in ("created", "metrics", "sha256", "version"):
            shipped.pop(key, None), built.pop(key, None)
        assert built == shipped, name
