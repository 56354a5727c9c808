"""Quality floors of the default (pyliverlesionseg) model set on real shared CTs, through the library API.

Floors, not pins: a better model passes. The measured numbers and how they were made are in the model
card and in Training/results/model_sets (`python -m Training.evaluate_model_sets`); test_shipped_models.py checks
that the set reproduces them. Each case is segmented once per session (`default_set_results`).
"""
import pytest

from LiverTumorSegLib.config import DEFAULT_MODELS_DIR
from LiverTumorSegLib.metrics import dice
from LiverTumorSegLib.model_sets import list_model_sets
from Training.evaluate_model_sets import lesions_found

SET = "pyliverlesionseg"
pytestmark = [pytest.mark.slow, pytest.mark.shipped_models]


def test_the_imported_set_is_the_default():
    assert list_model_sets(DEFAULT_MODELS_DIR)[0].name == SET


def test_the_pelvis_below_the_liver_gives_no_liver(default_set_results):
    res, _, _ = default_set_results("ct_full_pelvis")
    assert not res.labels.any() and any("no liver" in w for w in res.warnings)


def test_liver_of_the_abdominal_ct_agrees_with_its_silver_label(default_set_results):
    res, ref, _ = default_set_results("totalseg_ct")
    assert dice(res.labels > 0, ref > 0) >= 0.94  # agreement with a TotalSegmentator label (silver), measured 0.958
    assert res.model_set == SET and set(res.models) == {"liver", "tumor"}


def test_tumors_of_lits117_inside_the_expert_liver(default_set_results):
    res, ref, _ = default_set_results("lits117_roi_given_liver")
    assert dice(res.labels == 2, ref == 2) >= 0.70  # expert label; the original scored 0.796 the same way
    found, total = lesions_found(res.labels == 2, ref == 2, voxel_ml=2.5 / 1000)
    assert total > 10 and found >= total / 2  # lesions of >= 0.5 ml touched by a predicted tumor
