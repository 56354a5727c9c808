"""Manifest-driven inference features of third-party networks: valid-conv output crops, sigmoid outputs,
flexible patch sizes, liver-masked inputs, and the model-set folder layout."""
import json
import shutil

import numpy as np
import pytest

from LiverTumorSegLib.config import DEFAULT_MODELS_DIR
from LiverTumorSegLib.errors import ModelError
from LiverTumorSegLib.manifest import ModelManifest, load_manifest
from LiverTumorSegLib.model_sets import list_model_sets, resolve_model_set
from LiverTumorSegLib.preprocess import liver_mask_input
from LiverTumorSegLib.sliding_window import predict_probabilities, sigmoid_two_class, window_starts
from LiverTumorSegLib.windowing import Normalization
from Testing.conftest import TEST_MODELS


def cropping_identity(crop):
    """A 'valid' network: its one-channel logits are its input's centre (input less `crop` per side)."""
    def run(batch):
        z, y, x = crop
        return batch[:, :, z: batch.shape[2] - z, y: batch.shape[3] - y, x: batch.shape[4] - x]
    return run


@pytest.mark.parametrize("shape", [(9, 30, 41), (40, 40, 40), (3, 5, 7)])
@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_output_crop_tiles_reassemble_the_volume_exactly(shape, overlap):
    vol = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    crop = (2, 4, 3)
    probs = predict_probabilities(vol, cropping_identity(crop), (12, 20, 18), output_crop=crop,
                                  activation="sigmoid", overlap=overlap, pad_value=-9.0)
    np.testing.assert_allclose(probs[1], sigmoid_two_class(vol[None])[1], atol=1e-6)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-6)


def test_output_crop_windows_see_pad_value_beyond_the_volume():
    seen = []

    def run(batch):
        seen.append(batch.copy())
        return batch[:, :, 2:-2, 2:-2, 2:-2]
    predict_probabilities(np.zeros((4, 4, 4), np.float32), run, (8, 8, 8), output_crop=(2, 2, 2),
                          activation="sigmoid", pad_value=7.0)
    first = seen[0][0, 0]
    assert first[0, 0, 0] == 7.0 and first[2, 2, 2] == 0.0  # border from the pad value, centre from the volume


def test_a_network_returning_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="expected"):
        predict_probabilities(np.zeros((8, 8, 8), np.float32), lambda b: b, (8, 8, 8), output_crop=(1, 1, 1),
                              activation="sigmoid")


def _manifest(**kw) -> ModelManifest:
    base = dict(name="m", stage="tumor", version="1", onnx_file="tumor.onnx", sha256="", classes={0: "background", 1: "tumor"},
                spacing=(1.0, 1.0, 3.0), patch_size=(86, 172, 180), normalization=Normalization(-200, 200, 0, 400),
                output_activation="sigmoid", output_crop=(22, 44, 44))
    return ModelManifest(**(base | kw))


def test_flexible_patch_covers_the_volume_with_valid_sizes_and_respects_the_voxel_budget():
    m = _manifest(flexible_patch={"multiple": [8, 8, 8], "offset": [6, 4, 4], "max_voxels": 8_000_000})
    patch = m.patch_for((100, 128, 140))
    assert [(p - o) % 8 for p, o in zip(patch, (6, 4, 4))] == [0, 0, 0]
    assert all(p - 2 * c >= v for p, c, v in zip(patch, m.output_crop, (100, 128, 140)))
    big = m.patch_for((300, 400, 400))
    assert np.prod(big) <= 8_000_000 and [(p - o) % 8 for p, o in zip(big, (6, 4, 4))] == [0, 0, 0]
    assert _manifest().patch_for((300, 400, 400)) == (86, 172, 180)  # fixed patch without the rule


def _input_voxels(m: ModelManifest, volume, patch, overlap=0.0) -> int:
    """Voxels the network is fed when `patch` tiles `volume` (as predict_probabilities tiles it)."""
    out = [p - 2 * c for p, c in zip(patch, m.output_crop)]
    return int(np.prod(patch)) * int(np.prod([len(window_starts(v, o, overlap)) for v, o in zip(volume, out)]))


def test_flexible_patch_picks_the_tiling_that_feeds_the_network_the_fewest_voxels():
    m = _manifest(flexible_patch={"multiple": [8, 8, 8], "offset": [6, 4, 4], "max_voxels": 6_000_000})
    roi = (46, 198, 220)  # the liver ROI of the clinical-size benchmark CT at 1 x 1 x 3 mm
    patch = m.patch_for(roi)
    assert np.prod(patch) <= 6_000_000
    assert _input_voxels(m, roi, patch) <= 11_000_000  # two tiles; shrinking the longest axis gave four (24 M voxels)
    rng = np.random.default_rng(0)
    for _ in range(300):  # no other valid patch within the budget does better
        other = tuple(int(o + 8 * rng.integers(1, 40)) for o in (6, 4, 4))
        if np.prod(other) <= 6_000_000 and all(p - 2 * c > 0 for p, c in zip(other, m.output_crop)):
            assert _input_voxels(m, roi, patch) <= _input_voxels(m, roi, other)


def test_flexible_patch_counts_the_windows_an_overlap_adds_and_sizes_a_liver_window_to_the_ct():
    liver = _manifest(stage="liver", classes={0: "background", 1: "liver"}, patch_size=(162, 162, 189),
                      output_crop=(13, 13, 13), flexible_patch={"multiple": [27, 27, 27], "offset": [0, 0, 0],
                                                                "max_voxels": 162 * 162 * 189})
    assert liver.patch_for((112, 101, 122), 0.25) == (162, 135, 162)  # one window instead of 162 x 162 x 189
    big = (300, 170, 170)  # a whole-body CT at 3 mm
    patch = liver.patch_for(big, 0.25)
    assert np.prod(patch) <= 162 * 162 * 189 and all(p % 27 == 0 for p in patch)
    assert _input_voxels(liver, big, patch, 0.25) <= _input_voxels(liver, big, (162, 162, 189), 0.25)


def test_manifest_refuses_settings_inference_cannot_honour():
    with pytest.raises(ModelError, match="output_activation"):
        _manifest(output_activation="relu")
    with pytest.raises(ModelError, match="two classes"):
        _manifest(classes={0: "background", 1: "liver", 2: "tumor"})
    with pytest.raises(ModelError, match="output_crop"):
        _manifest(output_crop=(43, 0, 0))


def test_new_manifest_fields_round_trip_through_json():
    m = _manifest(liver_mask={"dilation_voxels": 2, "fill_value": -0.5}, pad_value=0.0, tile_overlap=0.0,
                  credit={"licence": "Apache-2.0"})
    again = ModelManifest.from_json(m.to_json())
    assert again == m and again.output_size == (42, 84, 92)


def test_liver_mask_input_fills_outside_the_dilated_liver():
    x = np.zeros((9, 9, 9), np.float32)
    liver = np.zeros_like(x, bool)
    liver[4, 4, 4] = True
    m = _manifest(liver_mask={"dilation_voxels": 1, "fill_value": -0.5})
    out = liver_mask_input(x, liver, m)
    assert out[4, 4, 4] == 0 and out[4, 4, 5] == 0 and out[5, 5, 4] == 0  # 18-connected step
    assert out[5, 5, 5] == -0.5 and out[0, 0, 0] == -0.5  # corner neighbour (26-only) and far away
    assert x.max() == 0  # input untouched


def test_shipped_sets_resolve_and_every_manifest_verifies():
    sets = list_model_sets(DEFAULT_MODELS_DIR)
    # Only sets that find tumors ship (issue 17): the small U-Nets of the old "fast" set live in Testing/models.
    assert sets[0].default and [s.name for s in sets] == ["pyliverlesionseg"]
    for s in sets:
        for path in (s.liver, s.tumor):
            m = load_manifest(path)
            assert (path.parent / m.onnx_file).is_file()
    assert resolve_model_set(TEST_MODELS, "fast").liver.parent.name == "fast"
    with pytest.raises(ModelError, match="no model set 'nope'.*available"):
        resolve_model_set(DEFAULT_MODELS_DIR, "nope")


def test_third_party_sets_carry_licence_and_citation():
    for s in list_model_sets(DEFAULT_MODELS_DIR):
        for path in (s.liver, s.tumor):
            m = load_manifest(path)
            if m.name.startswith("pyliverlesionseg"):
                assert m.credit["licence"] == "Apache-2.0" and "Tang" in m.credit["citation"]


def test_a_folder_with_liver_json_is_one_set_and_a_bad_sets_file_is_refused(tmp_path):
    one = tmp_path / "mine"
    shutil.copytree(TEST_MODELS / "fast", one)
    (only,) = list_model_sets(one)
    assert only.name == "mine" and only.default and only.tumor == one / "tumor.json"
    (tmp_path / "sets.json").write_text(json.dumps({"default": "x", "sets": {"y": {"liver": "mine/liver.json"}}}))
    with pytest.raises(ModelError, match="default set 'x'"):
        list_model_sets(tmp_path)
    with pytest.raises(ModelError, match="models folder not found"):
        list_model_sets(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no models in"):
        list_model_sets(tmp_path / "empty")


def test_a_liver_candidate_on_the_midline_is_no_liver_but_one_on_the_right_is():
    from LiverTumorSegLib.postprocess import implausible_liver, right_side_fraction

    hu = np.full((10, 40, 60), -1000.0)
    hu[:, 5:35, 10:50] = 40.0  # the body: x 10..49, midline at x = 29.5 (canonical LPS: small x = patient's right)
    midline, right = np.zeros(hu.shape, bool), np.zeros(hu.shape, bool)
    midline[:, 10:30, 20:40] = True  # a bladder-like blob across the midline
    right[:, 10:30, 12:32] = True  # mostly right of it
    assert right_side_fraction(midline, hu) == pytest.approx(0.5)
    assert right_side_fraction(right, hu) == pytest.approx(0.9)
    assert "midline" in implausible_liver(midline, hu, 0.027, 30.0, (-60.0, 250.0), min_right_fraction=0.65)
    assert implausible_liver(right, hu, 0.027, 30.0, (-60.0, 250.0), min_right_fraction=0.65) is None
    assert implausible_liver(midline, hu, 0.027, 30.0, (-60.0, 250.0)) is None  # the gate is the manifest's choice
