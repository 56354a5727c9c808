"""Cancelling a run from another thread, at random moments and during the resample back to the input grid.

Nothing here measures seconds: a cancel must stop the run at its next check, so after it no further
progress is reported (one callback may race with it) and no further model patch starts.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import LiverTumorSegLib as lts
from LiverTumorSegLib import cascade
from LiverTumorSegLib.errors import CancelledError
from LiverTumorSegLib.runtime import Model

from .test_tumor_path import lesion_on, real_ct, tiny_models  # noqa: F401  (module fixtures)

SEEDS = range(6)


@pytest.fixture
def patches_after_cancel(monkeypatch) -> dict:
    """Count model patches started while the current run's cancel event (set in `holder["cancel"]`) is set."""
    holder = {"cancel": None, "after": 0, "total": 0}
    run = Model.run

    def counting(self, batch):
        holder["total"] += 1
        holder["after"] += bool(holder["cancel"] is not None and holder["cancel"].is_set())
        return run(self, batch)

    monkeypatch.setattr(Model, "run", counting)
    return holder


def _cancel_later(cancel: threading.Event, delay_s: float) -> threading.Thread:
    """A thread that sets `cancel` after `delay_s` seconds."""
    thread = threading.Thread(target=lambda: (time.sleep(delay_s), cancel.set()), daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("seed", SEEDS)
def test_a_cancel_at_a_random_moment_stops_at_the_next_check(real_ct, tiny_models, patches_after_cancel, seed):
    image = lesion_on(real_ct, "native").image
    start = time.perf_counter()
    lts.segment(image, device="cpu", models_dir=tiny_models)
    duration = time.perf_counter() - start  # only to spread the cancel moments over a run, never asserted
    cancel, seen = threading.Event(), []
    patches_after_cancel.update(cancel=cancel, after=0)
    thread = _cancel_later(cancel, float(np.random.default_rng(seed).uniform(0.0, 1.1 * duration)))
    try:
        lts.segment(image, device="cpu", models_dir=tiny_models, cancel=cancel,
                    progress=lambda f, m: seen.append((f, cancel.is_set())))
        finished = True
    except CancelledError:
        finished = False
    thread.join()
    late = [f for f, was_set in seen if was_set]
    assert len(late) <= 1, f"progress went on after the cancel: {late}"
    assert patches_after_cancel["after"] <= 1, "model patches kept running after the cancel"
    if finished:
        assert seen[-1][0] == 1.0 and late in ([], [1.0]), "a finished run was cancelled only after its last check"


def test_a_cancel_during_the_resample_back_stops_the_run(real_ct, tiny_models, monkeypatch):
    image = lesion_on(real_ct, "native").image
    cancel, resampling, seen = threading.Event(), threading.Event(), []
    calls = []
    to_roi_grid = cascade.to_roi_grid

    def slow_resample(prob, reference):
        calls.append(1)
        if len(calls) == 2:  # the tumor probability going back to the input grid (the 1st is the liver's)
            resampling.set()
            assert cancel.wait(timeout=60), "the canceller thread never ran"
        return to_roi_grid(prob, reference)

    monkeypatch.setattr(cascade, "to_roi_grid", slow_resample)
    canceller = threading.Thread(target=lambda: resampling.wait(timeout=60) and cancel.set(), daemon=True)
    canceller.start()
    with pytest.raises(CancelledError):
        lts.segment(image, device="cpu", models_dir=tiny_models, cancel=cancel, progress=lambda f, m: seen.append(m))
    canceller.join()
    assert resampling.is_set() and len(calls) >= 2
    assert not any("measuring lesions" in m or m == "done" for m in seen)
