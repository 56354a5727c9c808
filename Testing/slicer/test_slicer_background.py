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
CLI_ONLY = {"cli.py"}  # the command line tool is not used inside Slicer


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


def test_background_cancel_runs_no_further_patches_and_writes_no_files(logic, shared_data, tmp_path, monkeypatch):
    from LiverTumorSegLib.runtime import Model

    ct = shared_data / "chaos_ct3" / "ct.nii.gz"  # 512 x 512 x 78: many patches, so the cancel lands mid-run
    out = tmp_path / "out"
    run = BackgroundRun(lambda progress, cancel: logic.processFiles([ct], out, progress=progress, cancel=cancel))
    patches = []  # per model patch: was the cancel already requested when it started?
    model_run = Model.run
    monkeypatch.setattr(Model, "run", lambda self, batch: (patches.append(run.cancelRequested), model_run(self, batch))[1])
    run.start()
    states = _poll(run, until=lambda s: s.fraction >= 0.05 or s.done)
    assert not states[-1].done, "the run ended before it could be cancelled"
    run.cancel()
    final = run.wait(timeout=300.0)
    assert final.done and final.error is None and run.cancelRequested
    (report,) = final.result
    assert report.status == "cancelled" and isinstance(report.message, str)
    assert patches.count(True) <= 1, f"{patches.count(True)} model patches ran after the cancel"
    assert not out.exists() or list(out.iterdir()) == [], "a cancelled case leaves no files"


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
