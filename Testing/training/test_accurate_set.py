"""Quality floors of the default (pyliverlesionseg) model set on real shared CTs, through the library API.

Floors, not pins: a better model passes. The measured numbers and how they were made are in the model
card and in the set's manifests (`python -m Training.evaluate_model_sets`).
"""
import pytest
import SimpleITK as sitk

import LiverTumorSegLib as lts
from LiverTumorSegLib.config import DEFAULT_MODELS_DIR
from LiverTumorSegLib.metrics import dice
from LiverTumorSegLib.model_sets import list_model_sets
from Training.evaluate_model_sets import lesions_found

SET = "pyliverlesionseg"
pytestmark = pytest.mark.slow


def _segment(image, **kw):
    return lts.segment(image, device="cpu", threads=2, model_set=SET, **kw)


def test_the_imported_set_is_the_default():
    assert list_model_sets(DEFAULT_MODELS_DIR)[0].name == SET


def test_the_pelvis_below_the_liver_gives_no_liver(shared_data):
    ct = sitk.ReadImage(str(shared_data / "totalseg_example" / "ct_full.nii.gz"))[:, :, :40]  # ~150 mm below the liver
    res = _segment(ct)
    assert not res.labels.any() and any("no liver" in w for w in res.warnings)


def test_liver_of_the_abdominal_ct_agrees_with_its_silver_label(shared_data):
    folder = shared_data / "totalseg_example"
    res = _segment(sitk.ReadImage(str(folder / "ct.nii.gz")))
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "liver_reference.nii.gz"))) > 0
    assert dice(res.labels > 0, ref) >= 0.94  # agreement with a TotalSegmentator label (silver), measured 0.958
    assert res.model_set == SET and set(res.models) == {"liver", "tumor"}


def test_tumors_of_lits117_inside_the_expert_liver(shared_data):
    ct = sitk.ReadImage(str(shared_data / "lits117_roi" / "ct.nii.gz"))
    lab = sitk.ReadImage(str(shared_data / "lits117_roi" / "label.nii.gz"))
    for img in (ct, lab):
        img.SetSpacing((1.0, 1.0, 2.5))  # the files carry 1 mm nominal; 2.5 mm slices assumed, as for the original
    res = _segment(ct, liver_mask=lab > 0)
    ref = sitk.GetArrayFromImage(lab)
    assert dice(res.labels == 2, ref == 2) >= 0.70  # expert label; the original scored 0.796 the same way
    found, total = lesions_found(res.labels == 2, ref == 2, voxel_ml=2.5 / 1000)
    assert total > 10 and found >= total / 2  # lesions of >= 0.5 ml touched by a predicted tumor
