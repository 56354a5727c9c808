"""Child-process entry point: segment one CT from a work folder and report machine-readable progress.

Run by engine_process.py as `PythonSlicer engine_worker.py WORKDIR` (any Python with LiverTumorSegLib
importable). Reads WORKDIR/request.json and WORKDIR/input.npy, writes WORKDIR/labels.npy and
WORKDIR/result.json, and prints one `LIVERTUMORSEG {json}` line per event on stdout:
{"event": "progress", "fraction", "message"}, {"event": "error", "type", "message", "traceback"} or
{"event": "done"}, after a first {"event": "started", "pid"} naming this process (under Slicer the
parent only knows the PythonSlicer launcher's pid). It exits when its stdin closes (the parent is gone). Python 3.9 compatible; no Slicer.
`engine_worker.py --probe` prints one {"event": "devices", "devices", "reason", "cpuEngine"} line: the devices that
really work here (onnxruntime-gpu lists CUDA even where CUDA's libraries or driver are unusable) and what runs
on the CPU (OpenVINO when installed and usable, else ONNX Runtime).
"""
import base64
import json
import os
import sys
import threading
import traceback
from dataclasses import asdict
from pathlib import Path

PREFIX = "LIVERTUMORSEG "
REQUEST, INPUT, LABELS, RESULT = "request.json", "input.npy", "labels.npy", "result.json"
LIVER_MASK = "liver_mask.npy"  # optional: the (edited) liver the tumor stage runs in (z, y, x, non-zero = liver)
#: A 69-byte ONNX model (y = Identity(x), opset 13, IR 7) to see whether a CUDA session really starts.
PROBE_MODEL = base64.b64decode("CAc6OwoQCgF4EgF5IghJZGVudGl0eRIFcHJvYmVaDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgBEgQKAggBQgQKABAN")


def emit(event: str, **fields) -> None:
    """Print one protocol line (flushed at once)."""
    sys.stdout.write(PREFIX + json.dumps(dict(event=event, **fields)) + "\n")
    sys.stdout.flush()


def exitWhenParentCloses() -> None:
    """Watch stdin in a daemon thread; end this process when the parent closes it (or dies)."""
    def watch() -> None:
        sys.stdin.read()
        os._exit(3)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def resultDict(result) -> dict:
    """The SegmentationResult fields other than the label map and geometry, as JSON-ready values."""
    return {"lesions": [asdict(lesion) for lesion in result.lesions], "liver_volume_ml": result.liver_volume_ml,
            "tumor_volume_ml": result.tumor_volume_ml, "slice_has_tumor": [bool(v) for v in result.slice_has_tumor],
            "timings": result.timings, "warnings": list(result.warnings), "device": result.device,
            "model_set": result.model_set, "models": result.models, "modality": result.modality}


def writeAtomically(path: Path, write) -> None:
    """Call write(tmpPath) and move the file into place, so a half-written file is never seen."""
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def arrayWriter(array):
    """A `write(path)` for writeAtomically that saves `array` as .npy at exactly that path."""
    def write(path: Path) -> None:
        import numpy as np

        with open(path, "wb") as f:
            np.save(f, array)
    return write


def usableDevices() -> tuple:
    """(devices that work here, why CUDA does not): ["cpu"] or ["cpu", "cuda"], checked with a real session."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return ["cpu"], "ONNX Runtime has no CUDA provider here"
    try:
        session = ort.InferenceSession(PROBE_MODEL, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        return ["cpu"], f"CUDA does not start: {exc}"
    if session.get_providers()[0] != "CUDAExecutionProvider":
        return ["cpu"], "onnxruntime-gpu is installed, but CUDA's libraries or driver are not usable"
    return ["cpu", "cuda"], ""


def cpuEngine() -> str:
    """What runs the networks on the CPU here, with versions (LiverTumorSegLib.runtime.cpu_engine_description)."""
    try:
        from LiverTumorSegLib.runtime import cpu_engine_description

        return cpu_engine_description()
    except Exception as exc:  # the device list must still come back
        return f"unknown ({exc.__class__.__name__}: {exc})"


def checkedDevice(kwargs: dict) -> list:
    """Switch "auto" to "cpu" where CUDA is listed but unusable (so the result names the real device).

    Returns warnings to add to the result; raises for an explicit "cuda" request that cannot work.
    """
    device = kwargs.get("device", "auto")
    if device not in ("auto", "cuda"):
        return []
    devices, reason = usableDevices()
    if "cuda" in devices:
        return []
    if device == "cuda":
        from LiverTumorSegLib.errors import LiverTumorSegError

        raise LiverTumorSegError(f"CUDA was requested, but {reason}; choose Auto or CPU")
    kwargs["device"] = "cpu"
    return [] if "no CUDA provider" in reason else [f"Ran on the CPU: {reason}."]


def run(workDir: Path) -> None:
    """Segment the request in `workDir` and write its outputs there."""
    import numpy as np
    from LiverTumorSegLib import Geometry, Volume, segment

    request = json.loads((workDir / REQUEST).read_text())
    geometry = Geometry(**{key: tuple(value) for key, value in request["geometry"].items()})
    volume = Volume(np.load(workDir / INPUT), geometry)
    kwargs = dict(request["segment"])
    warnings = checkedDevice(kwargs)
    liver = np.load(workDir / LIVER_MASK) if (workDir / LIVER_MASK).is_file() else None
    progress = lambda f, m: emit("progress", fraction=float(f), message=str(m))  # noqa: E731
    if request.get("lesion_at") is not None:  # "Add lesion": one lesion around a point, inside `liver`
        from LiverTumorSegLib.lesion_at import lesion_at

        keep = {k: kwargs[k] for k in ("device", "model_set") if k in kwargs}
        mask = lesion_at(volume, liver, tuple(request["lesion_at"]), progress=progress, **keep)
        writeAtomically(workDir / LABELS, arrayWriter(mask.astype(np.uint8)))
        writeAtomically(workDir / RESULT, lambda p: p.write_text(json.dumps({"lesion_at": True, "warnings": warnings})))
        return
    if liver is not None:
        kwargs["liver_mask"] = liver
    result = segment(volume, progress=progress, **kwargs)
    result.warnings = warnings + list(result.warnings)
    writeAtomically(workDir / LABELS, arrayWriter(result.labels))
    writeAtomically(workDir / RESULT, lambda p: p.write_text(json.dumps(resultDict(result))))


def main(argv: list) -> int:
    """Process entry point; returns the exit code (0 done, 2 error reported)."""
    try:
        if argv[1:] == ["--probe"]:  # short: no parent watch (its stdin may be closed from the start)
            devices, reason = usableDevices()
            emit("devices", devices=devices, reason=reason, cpuEngine=cpuEngine())
            return 0
        exitWhenParentCloses()
        emit("started", pid=os.getpid())  # under PythonSlicer this is the launcher's child, not the parent's
        run(Path(argv[1]))
    except BaseException as exc:  # reported to the parent, which shows it
        emit("error", type=type(exc).__name__, message=str(exc), traceback=traceback.format_exc())
        return 2
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
