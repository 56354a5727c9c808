"""`livertumorseg predict <folder> ...` in its own process, exactly as the console script runs it.

Run by bench_inference.py; the process wall time (interpreter start, imports, one session per
model for the whole batch, every case read, segmented and written) gives cases per minute.
"""
from __future__ import annotations

import sys

from common import emit
from LiverTumorSegLib.cli import main

if __name__ == "__main__":
    code = main(["predict", *sys.argv[1:], "--overwrite"])
    emit({"exit_code": code})
    sys.exit(code)
