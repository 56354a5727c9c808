"""The shipped models' manifests tell the truth on the shared data, and the models clear quality floors.

The tumor path itself is tested with a rule tumor model (Testing/lib/test_tumor_path.py), independently of
what the shipped tumor model predicts; here a better model than recorded passes, a worse one fails.
"""
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
# Minimum scores on every shared case with a reference for them (resubstitution: the models trained on these).
# Raise these when better models ship; tumor floors start at what a tumor model must at least not break.
FLOORS = {"liver_dice": 0.85}


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


def _scores(metrics: dict) -> dict[str, float]:
    """The recorded scores in [0, 1] (distances and counts are recorded for information only)."""
    return {k: v for k, v in metrics.items() if v is not None and not k.endswith(("_mm", "_rvd", "_fp"))}


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["liver", "tumor"])
def test_shipped_models_reproduce_their_recorded_metrics(stage: str, shipped_results: dict[str, dict]) -> None:
    recorded = _recorded(stage)
    assert recorded, f"the {stage} manifest records no case"
    for case, metrics in recorded.items():
        for key, value in _scores(metrics).items():
            got = shipped_results[case][key]
            assert got >= value - TOLERANCE, f"{case} {key}: {got:.4f}, the manifest claims {value:.4f}"


@pytest.mark.slow
def test_shipped_models_clear_the_quality_floors(shipped_results: dict[str, dict]) -> None:
    for case, metrics in shipped_results.items():
        for key, floor in FLOORS.items():
            if metrics.get(key) is not None:
                assert metrics[key] >= floor, f"{case} {key} {metrics[key]:.4f} is below the floor {floor}"
