"""Sliding-window inference: blending is exact for voxel-wise models, cancellation is prompt."""
import threading

import numpy as np
import pytest

from LiverTumorSegLib.errors import CancelledError
from LiverTumorSegLib.sliding_window import gaussian_weights, predict_probabilities, softmax, window_starts


def voxelwise(batch: np.ndarray) -> np.ndarray:
    """A 'network' whose logits depend only on each voxel: (x, -x)."""
    return np.concatenate([batch, -batch], axis=1)


@pytest.mark.parametrize("shape", [(20, 33, 47), (8, 10, 12), (32, 32, 32)])
def test_blended_windows_equal_the_voxelwise_answer_for_any_volume_size(shape):
    vol = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    probs = predict_probabilities(vol, voxelwise, (16, 16, 16), overlap=0.5)
    assert probs.shape == (2, *shape)
    np.testing.assert_allclose(probs, softmax(voxelwise(vol[None, None])[0]), atol=1e-5)


def test_windows_cover_every_voxel_with_the_requested_overlap():
    for size, patch in [(100, 32), (33, 32), (32, 32), (5, 32)]:
        starts = window_starts(size, patch, 0.5)
        covered = np.zeros(max(size, patch), bool)
        for s in starts:
            covered[s : s + patch] = True
        assert covered[:size].all() and starts[0] == 0
        assert all(b - a <= patch // 2 for a, b in zip(starts, starts[1:]))


def test_gaussian_weights_peak_in_the_centre_and_never_vanish():
    w = gaussian_weights((9, 9, 9), 0.125)
    assert w[4, 4, 4] == w.max() == 1.0 and w.min() > 0


def test_cancel_stops_before_the_next_patch():
    cancel = threading.Event()
    calls = []

    def run(batch):
        calls.append(1)
        if len(calls) == 3:
            cancel.set()
        return voxelwise(batch)

    with pytest.raises(CancelledError):
        predict_probabilities(np.zeros((64, 64, 64), np.float32), run, (16, 16, 16), cancel=cancel)
    assert len(calls) == 3


def test_settle_runs_the_top_row_first_and_can_end_the_run_there():
    from LiverTumorSegLib.sliding_window import predict_probabilities

    volume = np.random.default_rng(1).normal(size=(20, 6, 6)).astype(np.float32)
    runs = []

    def run(batch):
        runs.append(batch.shape)
        return np.stack([-batch[0, 0], batch[0, 0]])[None]  # two-class logits from the input itself

    full = predict_probabilities(volume, run, (8, 6, 6), overlap=0.25)
    n_full, seen = len(runs), []
    kept = predict_probabilities(volume, run, (8, 6, 6), overlap=0.25, settle=lambda p, z: seen.append(z) or False)
    assert np.allclose(kept, full, atol=1e-6) and len(runs) == 2 * n_full and seen == [12]  # top row's output: z 12-19
    runs.clear()
    top = predict_probabilities(volume, run, (8, 6, 6), overlap=0.25, settle=lambda p, z: True)
    assert len(runs) == 1
    assert top.shape == full.shape
    assert np.all(top[0, :12] == 1.0) and np.all(top[1, :12] == 0.0)  # rows not run: background
    assert np.allclose(top[:, 16:], full[:, 16:], atol=1e-6)  # where no other window reaches, as the full run
