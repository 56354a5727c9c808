"""One case of a batch, start to end: plan it (caseplan: skip or redo), segment, write atomically.

`run_case` is what the serial `livertumorseg predict` runs per case; `process_case` wraps it for the
cohort runner (serial or on every Dask worker) and returns the case's run-table row, so both give the
same files, names and skip/redo rules. The CLI sits on top of this module; nothing here imports it.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import SimpleITK as sitk

from .api import segment
from .caseplan import SUFFIX, case_settings, earlier_formats, output_paths, plan_case
from .cases import CaseJob, CaseOptions
from .dicom_seg import write_dicom_seg
from .dicom_sr import write_dicom_sr
from .errors import InvalidInputError, LiverTumorSegError
from .io import read_image, seg_nrrd_image, write_image, write_table
from .outputs import SKIPPED
from .result import SegmentationResult
from .runtable import LABEL_KEYS, done_row, failed_row, skipped_row


def _progress_bar(case: str):
    """A tqdm bar and a progress(fraction, message) callback driving it."""
    from tqdm import tqdm

    bar = tqdm(total=100, desc=case, unit="%", leave=False, file=sys.stderr, disable=None, mininterval=0.2,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def progress(fraction: float, message: str) -> None:
        bar.n = int(fraction * 100)
        bar.set_postfix_str(message, refresh=False)
        bar.update(0)  # redraws at most every `mininterval` seconds
    return bar, progress


def check_format_fits(path: Path, fmts: list[str]) -> None:
    """Refuse dicom-seg for an input that is not a DICOM series (there are no source instances to reference)."""
    if "dicom-seg" in fmts and not Path(path).is_dir():
        raise InvalidInputError(f"--format dicom-seg needs a DICOM series (a folder of DICOM files) as input; {path} is "
                                "a file, with no DICOM instances for the segmentation to reference (use nifti or seg.nrrd)")


def run_case(path: Path, args: argparse.Namespace, case: str) -> tuple[str, SegmentationResult | None, dict[str, Path], str]:
    """Segment one case and write its outputs: ("done" | "skipped", result, paths, why redone); raise on any failure.

    A case redone rewrites the label files of every format its earlier run wrote too, so that its files stay one result.
    """
    settings = case_settings(args)
    paths_now = output_paths(args.output, case, args.formats)
    plan, why = plan_case(path, paths_now, args.overwrite, settings)
    if plan == SKIPPED:
        return SKIPPED, None, paths_now, ""
    paths = output_paths(args.output, case, list(dict.fromkeys([*args.formats, *earlier_formats(paths_now["json"])])))
    check_format_fits(path, list(p for p in SUFFIX if p in paths))
    bar, progress = _progress_bar(case)
    cancel = threading.Event()
    try:
        result = segment(read_image(path), device=args.device, model_set=args.model_set, liver_only=args.liver_only,
                         min_lesion_mm3=args.min_lesion_mm3, threads=args.threads, force=args.force,
                         models_dir=args.models_dir, progress=progress, cancel=cancel,
                         cpu_engine=getattr(args, "cpu_engine", "auto"), tta=getattr(args, "tta", False),
                         modality=getattr(args, "modality", None))
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        bar.close()
    t0 = time.perf_counter()
    write_outputs(result, path, case, paths, overwrite=plan == "redo", settings=settings)
    result.timings["write"] = time.perf_counter() - t0
    return "done", result, paths, why if plan == "redo" else ""


def write_outputs(result: SegmentationResult, path: Path, case: str, paths: dict[str, Path], overwrite: bool,
                  settings: dict | None = None) -> None:
    """Write the label map(s), then the lesion CSV, then the JSON (last: a case with its JSON is complete).

    The JSON records the settings that shaped the result and the label files written with it.
    """
    image = result.label_image()
    for fmt in (f for f in SUFFIX if f in paths):
        if fmt == "dicom-seg":
            write_dicom_seg(result, path, paths[fmt], overwrite=overwrite)
            write_dicom_sr(result, path, paths[fmt], paths["dicom-sr"], overwrite=overwrite)
        else:
            write_image(seg_nrrd_image(image) if fmt == "seg.nrrd" else image, paths[fmt], overwrite=overwrite)
    rows = [lesion.row() for lesion in result.lesions]
    write_table(rows, paths["lesions"], overwrite=overwrite, extra={
        "case": case, "input": str(Path(path).absolute()), **result.summary(), "models": result.models,
        "settings": settings, "outputs": {kind: p.name for kind, p in paths.items() if kind in LABEL_KEYS},
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()}, "warnings": result.warnings,
        "slice_classes": result.slice_classes()})


def case_outputs(out_dir: Path, case: str, fmts) -> dict[str, Path]:
    """Every file one case writes: label map(s), lesion CSV and lesion JSON (the CLI's naming); `lesions_json` = `json`."""
    paths = output_paths(Path(out_dir), case, list(fmts) if not isinstance(fmts, str) else fmts)
    return {**paths, "lesions_json": paths["json"]}


def plan_job(job: CaseJob, options: CaseOptions) -> tuple[str, str]:
    """`plan_case` of a cohort case: ("skipped" | "redo" | "new", why redone); OutputExistsError for another input's files."""
    return plan_case(job.input, case_outputs(options.output, job.case, options.formats), options.overwrite,
                     case_settings(options))


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
    """The model set a case ran with and its models' "name version" (e.g. "pyliverlesionseg: pyliverlesionseg-liver 0.3 + ...")."""
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

    A complete case made with the same settings is skipped unless `overwrite`; an incomplete one (an
    output deleted, or a killed attempt) or one made with other settings is redone, replacing that
    case's own files. Bad input gives a failed row; any other exception propagates, so that Dask retries the case.
    """
    paths = case_outputs(options.output, job.case, options.formats)
    try:
        plan, why = plan_job(job, options)
    except LiverTumorSegError as exc:
        return failed_row(job, str(exc), worker_name())
    if plan == SKIPPED:
        return skipped_row(job, paths)
    leftovers = [p.name for p in paths.values() if p.exists()]
    remove_stale_temps(paths)
    threads = options.threads or default_threads()
    args = argparse.Namespace(**{**asdict(options), "formats": list(options.formats), "threads": threads,
                                 "overwrite": options.overwrite or bool(leftovers)})
    try:
        with sitk_threads(threads):
            status, result, written, _ = run_case(job.input, args, case=job.case)
    except LiverTumorSegError as exc:
        return failed_row(job, str(exc), worker_name())
    row = done_row(job, result, {**written, "lesions_json": paths["lesions_json"]}, model_set(result), worker_name())
    if leftovers and not options.overwrite:
        row["reason"] = f"redone: {why} (replaced {', '.join(leftovers)})"
    return row
