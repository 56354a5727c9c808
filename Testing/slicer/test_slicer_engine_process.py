"""The engine child process the widget polls: real subprocesses of the library, cancel, crashes and garbage."""
from __future__ import annotations

import sys
import os
import signal
import textwrap
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import psutil
import pytest
import SimpleITK as sitk

from LiverTumorSegLib import Geometry, segment
from LiverTumorSegLib.errors import CancelledError, InvalidInputError
from LiverTumorSegLogic import EngineError, EngineRun
from LiverTumorSegLogic.engine_process import WORKER_SCRIPT, probeEngine, runToCompletion

TINY = (np.zeros((4, 4, 4), np.int16), asdict(Geometry((1.0, 1.0, 1.0))))
#: PythonSlicer's stand-in: a parent that ignores SIGTERM and runs the worker as its child (launcher_stub.py).
LAUNCHER = [sys.executable, str(Path(__file__).with_name("launcher_stub.py"))]


def _fake_child(body: str) -> list[str]:
    """Command of a child Python running `body` (argv[1] is the work folder), speaking the worker's protocol."""
    prelude = f"import sys, os, json, time, signal; sys.path.insert(0, {str(WORKER_SCRIPT.parent)!r}); import engine_worker as w\n"
    return [sys.executable, "-c", prelude + textwrap.dedent(body)]


def _poll(run: EngineRun, until, timeout: float = 120.0):
    """Poll like the widget's QTimer until `until(state)` (or the child ends, or the timeout)."""
    states = [run.state()]
    while not until(states[-1]) and not states[-1].done:
        states.append(run.wait(0.05))
        if len(states) * 0.05 > timeout:
            break
    return states


def _run(image: sitk.Image, kwargs: dict, command=None) -> EngineRun:
    """An engine run on a SimpleITK image."""
    return EngineRun(sitk.GetArrayFromImage(image), asdict(Geometry.of(image)), kwargs, command)


def test_real_engine_reports_progress_and_returns_the_library_result(small_ct):
    run = _run(small_ct, {"liver_only": True}).start()
    states = _poll(run, until=lambda s: s.done)
    final = states[-1]
    assert final.done and final.error is None and final.fraction == 1.0
    fractions = [s.fraction for s in states]
    assert fractions == sorted(fractions) and any(0 < f < 1 for f in fractions)
    reference = segment(small_ct, liver_only=True)
    assert np.array_equal(final.result.labels, reference.labels)
    assert final.result.summary() | {"seconds": 0} == reference.summary() | {"seconds": 0}
    assert not run.workDir.exists(), "the work folder must be removed once the result is loaded"


def test_library_errors_of_the_child_arrive_as_the_same_typed_errors():
    run = EngineRun(np.zeros((1, 32, 32), np.int16), asdict(Geometry((1.0, 1.0, 1.0))), {}).start()
    final = run.wait(120)
    assert isinstance(final.error, InvalidInputError) and "too small" in str(final.error)


def test_cancel_ends_the_child_and_leaves_no_files(shared_data):
    ct = sitk.ReadImage(str(shared_data / "chaos_ct3" / "ct.nii.gz"))  # 512 x 512 x 78: runs well past the cancel
    run = _run(ct, {}).start()
    before = _poll(run, until=lambda s: s.fraction >= 0.05)[-1]
    assert not before.done, "the CT finished before the cancel: the test no longer tests cancelling"
    pid = run.pid
    run.cancel()  # kills the process tree and returns at once; done once every process is gone
    final = run.wait(30)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert final.done and isinstance(final.error, CancelledError) and run.cancelRequested
    assert not run.workDir.exists()


def test_a_cancel_event_stops_a_console_run_with_cancelled_error(small_ct):
    cancel, seen = threading.Event(), []

    def progress(fraction, message):
        seen.append(fraction)
        if fraction >= 0.1:
            cancel.set()

    run = _run(small_ct, {})
    with pytest.raises(CancelledError):
        runToCompletion(run, progress, cancel)
    assert seen and not run.workDir.exists()
    assert not psutil.pid_exists(run.pid) or psutil.Process(run.pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize("body, expected", [
    ("w.emit('progress', fraction=0.2, message='x'); os.kill(os.getpid(), signal.SIGKILL)", "SIGKILL; most likely it ran out of memory"),
    ("w.emit('progress', fraction=0.2, message='x'); os.abort()", "SIGABRT; it crashed"),
    ("sys.stderr.write('Traceback: boom in the engine\\n'); sys.exit(7)", "exited with code 7 without a result. Its last output:\nTraceback: boom"),
    ("w.emit('error', type='MemoryError', message='', traceback='')", "ran out of memory"),
    ("w.emit('error', type='RuntimeException', message='[ONNXRuntimeError] Failed to allocate memory for 2 GB', traceback='')", "ran out of memory"),
    ("w.emit('error', type='ZeroDivisionError', message='division by zero', traceback='')", "failed: ZeroDivisionError: division by zero"),
], ids=["oom-killed", "abort", "exit-code", "memory-error", "onnx-allocation", "unexpected-exception"])
def test_a_failing_child_becomes_a_clear_engine_error(body, expected):
    run = EngineRun(*TINY, {}, _fake_child(body)).start()
    final = run.wait(60)
    assert final.done and isinstance(final.error, EngineError)
    assert expected in str(final.error)
    assert not run.workDir.exists()


def test_garbage_output_is_ignored_and_a_child_without_result_is_an_error():
    body = """
        print('hello from a library'); print(w.PREFIX + '{not json'); print(w.PREFIX + '[1, 2]')
        print(w.PREFIX + json.dumps({'event': 'progress', 'fraction': 'lots'}))
        sys.stdout.buffer.write(b'\\xff\\xfe binary junk\\n')
        w.emit('progress', fraction=0.4, message='liver stage')
        print(w.PREFIX + json.dumps({'event': 'progress', 'fraction': 0.1, 'message': 'back in time'}))
    """
    run = EngineRun(*TINY, {}, _fake_child(body)).start()
    final = run.wait(60)
    assert final.done and isinstance(final.error, EngineError) and "ended without a result" in str(final.error)
    assert final.fraction == 0.4, "progress never goes backwards and malformed lines change nothing"


def test_a_done_without_result_files_is_an_engine_error_not_a_crash():
    run = EngineRun(*TINY, {}, _fake_child("w.emit('done')")).start()
    final = run.wait(60)
    assert isinstance(final.error, EngineError) and "cannot read" in str(final.error)


def test_the_child_exits_when_its_parent_goes_away():
    run = EngineRun(*TINY, {}, _fake_child("w.exitWhenParentCloses(); time.sleep(120)")).start()
    run._proc.stdin.close()  # what the operating system does when Slicer dies
    assert run._proc.wait(30) == 3


def test_a_missing_python_is_an_engine_error_and_leaves_no_files():
    run = EngineRun(*TINY, {}, ["/nonexistent/PythonSlicer"])
    with pytest.raises(EngineError, match="cannot start"):
        run.start()
    assert not run.workDir.exists()



class _FallbackSession:
    """What onnxruntime-gpu's InferenceSession does where CUDA's libraries are missing: it runs on the CPU."""

    def __init__(self, model, providers):
        self.providers = [p for p in providers if p == "CPUExecutionProvider"]

    def get_providers(self):
        return self.providers


class _CudaSession(_FallbackSession):
    """A session where CUDA works."""

    def __init__(self, model, providers):
        self.providers = list(providers)


@pytest.mark.parametrize("session, devices", [(_FallbackSession, ["cpu"]), (_CudaSession, ["cpu", "cuda"])],
                         ids=["cuda-listed-but-unusable", "cuda-works"])
def test_device_check_believes_a_real_session_not_the_provider_list(monkeypatch, session, devices):
    import types

    from LiverTumorSegLogic import engine_worker

    fake = types.SimpleNamespace(get_available_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
                                 InferenceSession=session)
    monkeypatch.setitem(sys.modules, "onnxruntime", fake)
    assert engine_worker.usableDevices()[0] == devices
    auto = {"device": "auto"}
    warnings = engine_worker.checkedDevice(auto)
    assert auto["device"] == ("auto" if "cuda" in devices else "cpu")
    assert bool(warnings) == ("cuda" not in devices)


def test_an_explicit_cuda_request_where_cuda_is_unusable_is_a_clear_error(monkeypatch):
    import types

    from LiverTumorSegLib.errors import LiverTumorSegError
    from LiverTumorSegLogic import engine_worker

    fake = types.SimpleNamespace(get_available_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
                                 InferenceSession=_FallbackSession)
    monkeypatch.setitem(sys.modules, "onnxruntime", fake)
    with pytest.raises(LiverTumorSegError, match="CUDA was requested, but onnxruntime-gpu is installed"):
        engine_worker.checkedDevice({"device": "cuda"})
    assert engine_worker.checkedDevice({"device": "cpu"}) == []


def test_the_panel_device_check_runs_in_the_engine_process(logic):
    assert logic.availableDevices() == ["cpu"]  # this environment has the CPU build of ONNX Runtime
    assert logic.cudaUnavailableReason() == "ONNX Runtime has no CUDA provider here"


def test_the_panel_shows_the_cpu_engine_of_the_engine_process(logic, monkeypatch):
    from LiverTumorSegLib.runtime import cpu_engine_description

    monkeypatch.setattr(type(logic), "_devices", None)
    monkeypatch.setattr(type(logic), "_deviceCheck", None)
    assert logic.knownCpuEngine() is None, "unknown until the engine process was asked"
    logic.availableDevices()
    assert logic.knownCpuEngine() == cpu_engine_description()  # this environment: OpenVINO, ONNX Runtime as fallback
    assert logic.knownCpuEngine().startswith("OpenVINO ")
    logic.forgetDeviceCheck()  # after an install: the next check asks the engine process again
    assert logic.knownCpuEngine() is None and logic.knownDevices() is None


def test_the_done_line_names_the_engine_that_ran(small_ct_result):
    import openvino
    from LiverTumorSegLogic import LiverTumorSegLogic

    assert LiverTumorSegLogic.engineLine(small_ct_result) == f"openvino {openvino.__version__.split('-')[0]}"
    assert LiverTumorSegLogic.engineLine(type("Old", (), {"models": {}})()) == ""


def test_an_engine_process_without_openvino_reports_onnx_runtime():
    hide = ("import runpy, sys; sys.modules['openvino'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    probe = probeEngine([sys.executable, "-c", hide, str(WORKER_SCRIPT)])
    assert probe.devices == ["cpu"]
    assert probe.cpuEngine.startswith("ONNX Runtime ") and "OpenVINO not installed" in probe.cpuEngine


def _gone(pid: int) -> bool:
    """True when process `pid` no longer runs (a zombie awaiting its parent counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def large_ct(shared_data) -> sitk.Image:
    """chaos_ct3 (512 x 512 x 78): its segmentation runs for seconds, well past a cancel or a kill."""
    return sitk.ReadImage(str(shared_data / "chaos_ct3" / "ct.nii.gz"))


def _started_through_launcher(ct: sitk.Image) -> EngineRun:
    """A real engine run started as PythonSlicer does it, polled until the worker has begun segmenting."""
    run = _run(ct, {}, LAUNCHER + [str(WORKER_SCRIPT)]).start()
    before = _poll(run, until=lambda s: s.fraction > 0 and run.workerPid is not None)[-1]
    assert not before.done, f"the run ended before the test could stop it: {before.error}"
    assert run.workerPid != run.pid, "the worker must run as the launcher's child"
    return run


def test_cancel_through_a_launcher_kills_the_real_worker_without_blocking_and_writes_nothing(large_ct):
    run = _started_through_launcher(large_ct)
    launcher, worker, workDir = run.pid, run.workerPid, run.workDir
    started = time.monotonic()
    run.cancel()
    assert time.monotonic() - started < 0.5, "cancel() must not block the GUI"
    final = run.wait(30)
    assert final.done and isinstance(final.error, CancelledError)
    assert _gone(worker), "the real engine (the launcher's child) kept running after Cancel"
    assert _gone(launcher)
    assert not workDir.exists(), "the cancelled run's files must be deleted"


def test_a_cancelled_launcher_run_is_not_done_while_its_worker_still_runs(large_ct, monkeypatch):
    from LiverTumorSegLogic import proctree

    run = _started_through_launcher(large_ct)
    worker = run.workerPid
    monkeypatch.setattr(proctree, "killAll", lambda processes, groupId=None: [
        p.kill() for p in processes if p.pid != worker])  # as if only the launcher could be stopped
    monkeypatch.setattr(run, "_closeStdin", lambda: None)  # ... and the worker ignored its closed stdin
    run.cancel()
    time.sleep(1.0)
    assert not _gone(worker)
    assert not run.state().done, "a run must stay busy (Apply disabled) while an engine process of it runs"
    os.kill(worker, signal.SIGKILL)
    assert run.wait(30).done and not run.workDir.exists()


def test_a_worker_killed_under_the_launcher_is_reported_as_out_of_memory_not_exit_code_1(large_ct):
    run = _started_through_launcher(large_ct)
    os.kill(run.workerPid, signal.SIGKILL)  # what the kernel's out-of-memory killer does
    final = run.wait(30)
    assert final.done and isinstance(final.error, EngineError)
    assert "ran out of memory" in final.error.message and "code 1" not in final.error.message
    assert "exit abnormally" in final.error.output, "the launcher's own words stay in the details"
