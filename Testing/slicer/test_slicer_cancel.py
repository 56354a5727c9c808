"""Cancel in Slicer, where the engine runs under the PythonSlicer launcher (launcher_stub.py stands in for it)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest

import slicer
from LiverTumorSegLib.errors import CancelledError
from LiverTumorSegLogic.engine_process import WORKER_SCRIPT

LAUNCHER = [sys.executable, str(Path(__file__).with_name("launcher_stub.py")), str(WORKER_SCRIPT)]


def _running(pid: int) -> bool:
    """True while process `pid` runs (zombies count as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_cancel_under_the_launcher_leaves_no_process_and_no_scene_change_and_a_new_run_works(
        headless, logic, shared_data, small_ct_path):
    logic.engineCommand = LAUNCHER
    large = slicer.util.loadVolume(str(shared_data / "chaos_ct3" / "ct.nii.gz"))
    before = headless.nodeCount()
    run = logic.startSegmentation(logic.volumeFromNode(large))
    deadline = time.monotonic() + 120
    while run.state().fraction == 0:
        assert not run.state().done and time.monotonic() < deadline, "the engine ended before it could be cancelled"
        time.sleep(0.05)
    processes = [run.pid] + [child.pid for child in psutil.Process(run.pid).children(recursive=True)]
    assert len(processes) >= 2, "the worker must run as the launcher's child"
    run.cancel()
    final = run.wait(30)
    assert final.done and isinstance(final.error, CancelledError)
    assert not any(_running(pid) for pid in processes), "a process of the cancelled run is still running"
    assert headless.nodeCount() == before, "a cancelled run must not change the scene"
    assert not run.workDir.exists()

    small = slicer.util.loadVolume(str(small_ct_path))
    segmentationNode = logic.process(small, liverOnly=True)  # the next Apply, through the same launcher
    assert segmentationNode.GetSegmentation().GetSegmentIdBySegmentName("Liver")
