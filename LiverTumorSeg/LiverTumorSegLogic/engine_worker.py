"""Child-process entry point: segment one CT from a work folder and report machine-readable progress.

Run by engine_process.py as `PythonSlicer engine_worker.py WORKDIR` (any Python with LiverTumorSegLib
importable). Reads WORKDIR/request.json and WORKDIR/input.npy, writes WORKDIR/labels.npy and
WORKDIR/result.json, and prints one `LIVERTUMORSEG {json}` line per event on stdout:
{"event": "progress", "fraction", "message"}, {"event": "error", "type", "message", "traceback"} or
{"event": "done"}. It exits when its stdin closes (the parent is gone). Python 3.9 compatible; no Slicer.
"""
import json
import os
import sys
import threading
import traceback
from dataclasses import asdict
from pathlib import Path

PREFIX = "LIVERTUMORSEG "
REQUEST, INPUT, LABELS, RESULT = "request.json", "input.npy", "labels.npy", "result.json"


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
            "timings": result.timings, "warnings": list(result.warnings), "device": result.device}


def writeAtomically(path: Path, write) -> None:
    """Call write(tmpPath) and move the file into place, so a half-written file is never seen."""
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def run(workDir: Path) -> None:
    """Segment the request in `workDir` and write its outputs there."""
    import numpy as np
    from LiverTumorSegLib import Geometry, Volume, segment

    request = json.loads((workDir / REQUEST).read_text())
    geometry = Geometry(**{key: tuple(value) for key, value in request["geometry"].items()})
    volume = Volume(np.load(workDir / INPUT), geometry)
    result = segment(volume, progress=lambda f, m: emit("progress", fraction=float(f), message=str(m)),
                     **request["segment"])

    def saveLabels(p: Path) -> None:
        with open(p, "wb") as f:
            np.save(f, result.labels)

    writeAtomically(workDir / LABELS, saveLabels)
    writeAtomically(workDir / RESULT, lambda p: p.write_text(json.dumps(resultDict(result))))


def main(argv: list) -> int:
    """Process entry point; returns the exit code (0 done, 2 error reported)."""
    exitWhenParentCloses()
    try:
        run(Path(argv[1]))
    except BaseException as exc:  # reported to the parent, which shows it
        emit("error", type=type(exc).__name__, message=str(exc), traceback=traceback.format_exc())
        return 2
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
