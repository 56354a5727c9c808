"""The shipped models still give the metrics recorded in their manifests on the shared data."""
from __future__ import annotations

from pathlib import Path

import pytest
import SimpleITK as sitk

from LiverTumorSegLib import segment
from LiverTumorSegLib.config import DEFAULT_MODELS_DIR
from LiverTumorSegLib.manifest import load_manifest
from LiverTumorSegLib.metrics import evaluate_case
from Training.config import SourceConfig
from Training.data.adapters import list_cases, load_case

TOLERANCE = 0.01  # absolute, on Dice / precision / recall / F1 / accuracy: ONNX Runtime thread-count jitter only
RECORD = "shared_data_training_cases"


def _recorded(stage: str) -> dict:
    path = DEFAULT_MODELS_DIR / f"{stage}.json"
    if not path.is_file():
        pytest.skip(f"no shipped {stage} model")
    return load_manifest(path).metrics.get(RECORD, {}).get("cases", {})


@pytest.fixture(scope="module")
def shipped_results(shared_data: Path) -> dict[str, dict]:
    """Cascade metrics of the bundled models on every shared case recorded in either manifest."""
    wanted = set(_recorded("liver")) | set(_recorded("tumor"))
    if not wanted:
        pytest.skip("the shipped manifests record no shared-data metrics")
    rows = {}
    for case in list_cases([SourceConfig("shared", str(shared_data), sorted(wanted))]):
        ct, ref = load_case(case)
        result = segment(ct, device="cpu", threads=2, force=True, models_dir=DEFAULT_MODELS_DIR)
        rows[case.case_id] = evaluate_case(result.labels, sitk.GetArrayFromImage(ref), ct.GetSpacing())
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["liver", "tumor"])
def test_shipped_models_reproduce_their_recorded_metrics(stage: str, shipped_results: dict[str, dict]) -> None:
    for case, metrics in _recorded(stage).items():
        for key, value in metrics.items():
            if value is None or key.endswith(("_mm", "_rvd", "_fp")):
                continue  # distances and counts are recorded for information; scores in [0, 1] are checked
            assert shipped_results[case][key] == pytest.approx(value, abs=TOLERANCE), (case, key)
