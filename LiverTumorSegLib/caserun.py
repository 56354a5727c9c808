"""One case of a batch, start to end: skip if complete, segment, write atomically, return its run-table row.

The same function runs in the serial batch and on every Dask worker, so both give the same files,
names and skip/redo rules. It wraps the CLI's `run_case`.
"""
from __future__ import annotations

import argparse
import functools
import os
import socket
import sys
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import SimpleITK as sitk

from .cases import CaseJob, CaseOptions
from .errors import LiverTumorSegError
from .outputs import is_complete
from .result import SegmentationResult
from .runtable import done_row, failed_row, skipped_row


def case_outputs(out_dir: Path, case: str, fmts) -> dict[str, Path]:
    """Every file one case writes: label map(s), lesion CSV and lesion JSON (the CLI's naming); `lesions_json` = `json`."""
    from .cli import output_paths

    paths = output_paths(Path(out_dir), case, list(fmts) if not isinstance(fmts, str) else fmts)
    return {**paths, "lesions_json": paths["json"]}


def case_complete(paths: dict[str, Path]) -> bool:
    """True when every output of a case exists and is not empty: the serial CLI's rule (outputs.is_complete)."""
    return is_complete(paths.values())


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask: what a cgroup or SLURM allots)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def worker_name() -> str:
    """The Dask worker address running this case, else host:pid."""
    if "distributed" in sys.modules:
        from distributed import get_worker

        try:
            return get_worker().address
        except ValueError:
            pass
    return f"{socket.gethostname()}:{os.getpid()}"


def default_threads() -> int | None:
    """Threads for a case when none were given: on a Dask worker its cores ÷ its task slots, else None."""
    if "distributed" in sys.modules:
        from distributed import get_worker

        try:
            return max(1, usable_cores() // max(1, get_worker().state.nthreads))
        except ValueError:
            pass
    return None


def model_set(result: SegmentationResult) -> str:
    """The model set a case ran with and its models' "name version" (e.g. "fast: livertumorseg-liver 0.1.0 + ...")."""
    models = " + ".join(f"{m['name']} {m['version']}" for m in result.models.values())
    return f"{result.model_set}: {models}" if result.model_set else models


def remove_stale_temps(paths: dict[str, Path]) -> None:
    """Delete temporary files an earlier, killed attempt at this case left beside its outputs."""
    for p in paths.values():
        for tmp in p.parent.glob(f".{p.name}.*"):
            tmp.unlink(missing_ok=True)


@contextmanager
def sitk_threads(threads: int | None) -> Iterator[None]:
    """Limit SimpleITK's threads to `threads` for the block (so workers x threads fits the machine)."""
    if not threads:
        yield
        return
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def process_case(job: CaseJob, options: CaseOptions) -> dict:
    """Segment one case and write its outputs atomically; return its row (done / skipped / failed).

    A complete case is skipped unless `overwrite`; an incomplete one (an output deleted, or a killed
    attempt) is redone, replacing that case's own leftovers. Bad input gives a failed row; any other
    exception propagates, so that Dask retries the case.
    """
    from .cli import run_case

    paths = case_outputs(options.output, job.case, options.formats)
    if not options.overwrite and case_complete(paths):
        return skipped_row(job, paths)
    leftovers = [p.name for p in paths.values() if p.exists()]
    remove_stale_temps(paths)
    threads = options.threads or default_threads()
    args = argparse.Namespace(**{**asdict(options), "formats": list(options.formats), "threads": threads,
                                 "overwrite": options.overwrite or bool(leftovers)})
    try:
        with sitk_threads(threads):
            status, result, written = run_case(job.input, args, case=job.case)
    except LiverTumorSegError as exc:
        return failed_row(job, str(exc), worker_name())
    if result is None:  # the serial rule found it complete after all
        return skipped_row(job, paths)
    row = done_row(job, result, {**written, "lesions_json": paths["lesions_json"]}, model_set(result), worker_name())
    if leftovers and not options.overwrite:
        row["reason"] = f"redone: its outputs were incomplete (replaced {', '.join(leftovers)})"
    return row
