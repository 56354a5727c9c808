"""The worker-thread runner the widget polls, and the first-use dependency check."""
from __future__ import annotations

import ast
import sys
import time
from pathlib import Path

import numpy as np

from LiverTumorSegLib.errors import CancelledError
from LiverTumorSegLogic import BackgroundRun, RunOptions, dependencies

LIBRARY_DIR = Path(__file__).resolve().parents[2] / "LiverTumorSegLib"
SLICER_BUNDLED = {"numpy", "SimpleITK"}  # shipped with every Slicer
# The command line tool and the cohort batch (Dask, tqdm) are not used inside Slicer.
CLI_ONLY = {"cli.py", "cli_cohort.py", "cohort.py", "caserun.py"}


def _poll(run: BackgroundRun, timeout: float = 120.0, until=lambda s: s.done):
    """Poll a run like the widget's QTimer does, until `until(state)` or the timeout."""
    deadline = time.monotonic() + timeout
    states = [run.state()]
    while not until(states[-1]) and time.monotonic() < deadline:
        time.sleep(0.05)
        states.append(run.state())
    return states


def test_background_run_reports_progress_and_hands_back_the_result(logic, small_ct):
    run = BackgroundRun(lambda progress, cancel: logic.segmentVolume(small_ct, RunOptions(liverOnly=True), progress, cancel))
    states = _poll(run.start())
    final = states[-1]
    assert final.done and final.error is None and final.fraction == 1.0
    fractions = [s.fraction for s in states]
    assert fractions == sorted(fractions) and any(0 < f < 1 for f in fractions)
    assert final.result.labels.shape == small_ct.GetSize()[::-1]


def test_background_cancel_stops_within_a_second(logic, shared_data):
    import SimpleITK as sitk

    ct = sitk.ReadImage(str(shared_data / "chaos_ct3" / "ct.nii.gz"))  # 512 x 512 x 78: takes well over a second
    run = BackgroundRun(lambda progress, cancel: logic.segmentVolume(ct, RunOptions(), progress, cancel)).start()
    _poll(run, until=lambda s: s.fraction >= 0.05 or s.done)
    cancelled = time.perf_counter()
    run.cancel()
    final = run.wait(timeout=5.0)
    assert final.done and isinstance(final.error, CancelledError) and run.cancelRequested
    assert time.perf_counter() - cancelled < 1.0


def test_background_errors_are_handed_back_not_raised():
    run = BackgroundRun(lambda progress, cancel: np.zeros(3)[7]).start()
    final = run.wait(timeout=5.0)
    assert final.done and isinstance(final.error, IndexError) and final.result is None


def test_runtime_packages_cover_every_library_dependency_slicer_lacks():
    imported = set()
    for path in LIBRARY_DIR.rglob("*.py"):
        if path.name in CLI_ONLY:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"LiverTumorSegLib"}
    assert third_party - SLICER_BUNDLED <= set(dependencies.RUNTIME_PACKAGES)


def test_dependency_check_names_pip_packages_and_prefers_the_gpu_runtime_with_a_gpu():
    assert dependencies.missingModules() == []  # this environment has everything
    dependencies.requireDependencies()
    assert dependencies.pipRequirements(["onnxruntime", "cc3d"], nvidiaGpu=False) == ["onnxruntime", "connected-components-3d"]
    assert dependencies.pipRequirements(["onnxruntime"], nvidiaGpu=True) == ["onnxruntime-gpu"]
