"""Shared pytest fixtures: where the real shared data lives, and small synthetic phantoms."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]

# The engine-plumbing tests (geometry, outputs, CLI, Slicer) run the small "fast" model set: they test what the
# code does with any model, and the default pyliverlesionseg set costs ~10x more CPU. That set is not shipped (it finds
# no tumor on real CTs): it lives in Testing/models, whose sets.json also points at the shipped default set. Tests of
# the default set name it explicitly (Testing/training/test_accurate_set.py, test_pretrained_parity.py); tests of what
# ships read LiverTumorSegLib.config.DEFAULT_MODELS_DIR.
TEST_MODELS = REPO / "Testing" / "models"
os.environ.setdefault("LIVERTUMORSEG_MODELS_DIR", str(TEST_MODELS))
os.environ.setdefault("LIVERTUMORSEG_MODEL_SET", "fast")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test of the shipped models fails the run (see `fail_skipped_shipped_model_test`)."""
    outcome = yield
    fail_skipped_shipped_model_test(item, outcome.get_result())


def fail_skipped_shipped_model_test(item, report) -> None:
    """Turn the report of a skipped `shipped_models` test into a failure saying why it did not run:
    a test of the shipped models that cannot run (a moved model, a missing record) protects nothing."""
    if report.skipped and item.get_closest_marker("shipped_models") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"a test of the shipped models was skipped ({reason}); it must run, or it protects nothing"


def _shared_data_dir() -> Path:
    env = os.environ.get("LIVERTUMORSEG_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


SHARED = _shared_data_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder with the real CTs (../shared/data beside the repo, or $LIVERTUMORSEG_SHARED_DATA)."""
    if not (SHARED / "README.md").is_file():
        pytest.fail(f"real shared data not found at {SHARED}; set LIVERTUMORSEG_SHARED_DATA")
    return SHARED


def phantom_ct(size_xyz=(40, 36, 30), spacing=(1.5, 1.2, 2.0), origin=(-30.0, 10.0, 5.0),
               direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), seed: int = 0) -> sitk.Image:
    """A small CT-like phantom: air, a soft-tissue body (40 HU), a 'liver' blob (100 HU), a 'tumor' (40 HU)."""
    rng = np.random.default_rng(seed)
    x, y, z = size_xyz
    a = np.full((z, y, x), -1000.0, dtype=np.float32)
    zz, yy, xx = np.mgrid[:z, :y, :x]
    body = ((xx - x / 2) / (x * 0.45)) ** 2 + ((yy - y / 2) / (y * 0.45)) ** 2 < 1
    a[body] = 40.0
    liver = ((xx - x * 0.4) / (x * 0.2)) ** 2 + ((yy - y * 0.5) / (y * 0.2)) ** 2 + ((zz - z / 2) / (z * 0.3)) ** 2 < 1
    a[liver] = 100.0
    a += rng.normal(0, 10, a.shape).astype(np.float32)
    img = sitk.GetImageFromArray(a.astype(np.int16))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(tuple(float(d) for d in direction))
    return img


@pytest.fixture
def phantom() -> sitk.Image:
    """A small anisotropic CT-like phantom with a non-zero origin."""
    return phantom_ct()
