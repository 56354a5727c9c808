"""One case of a batch, start to end: where its files go, skip if complete, segment, write atomically.

`run_case` is what the serial `livertumorseg predict` runs per case; `process_case` wraps it for the
cohort runner (serial or on every Dask worker) and returns the case's run-table row, so both give the
same files, names and skip/redo rules. The CLI sits on top of this module; nothing here imports it.
"""
from __future__ import annotations

import argparse
import json
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

from .api import make_config, segment, selected_model_set
from .cases import CaseJob, CaseOptions
from .dicom_seg import SEG_SUFFIX, write_dicom_seg
from .dicom_sr import SR_SUFFIX, write_dicom_sr
from .errors import InvalidInputError, LiverTumorSegError, OutputExistsError
from .io import read_image, seg_nrrd_image, write_image, write_table
from .manifest import load_manifest
from .outputs import SKIPPED, existing, is_complete
from .result import SegmentationResult
from .runtable import LABEL_KEYS, done_row, failed_row, skipped_row

SUFFIX = {"nifti": "_seg.nii.gz", "seg.nrrd": ".seg.nrrd", "dicom-seg": SEG_SUFFIX}


def output_paths(out_dir: Path, case: str, fmts: list[str] | str) -> dict[str, Path]:
    """Where one case's outputs go, by kind; the lesion JSON comes last (written last, it marks a complete case)."""
    fmts = [fmts] if isinstance(fmts, str) else fmts
    paths = {fmt: out_dir / f"{case}{SUFFIX[fmt]}" for fmt in fmts}
    if "dicom-seg" in paths:  # the lesion measurements go to PACS too, as a report referencing the SEG
        paths["dicom-sr"] = out_dir / f"{case}{SR_SUFFIX}"
    return {**paths, "lesions": out_dir / f"{case}_lesions.csv", "json": out_dir / f"{case}_lesions.json"}


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


def case_settings(options: argparse.Namespace | CaseOptions) -> dict:
    """The settings that shape a case's result (model set, models, liver only, smallest lesion), as its JSON records them."""
    cfg = make_config(fast=options.fast, model_set=options.model_set, models_dir=options.models_dir,
                      liver_only=options.liver_only, min_lesion_mm3=options.min_lesion_mm3)
    mset = selected_model_set(cfg)
    stages = {"liver": mset.liver} if cfg.liver_only or mset.tumor is None else {"liver": mset.liver, "tumor": mset.tumor}
    models = {stage: _model_id(path) for stage, path in stages.items()}
    return {"model_set": mset.name, "models": models, "liver_only": cfg.liver_only,
            "min_lesion_mm3": cfg.postprocess.min_lesion_mm3}


def _model_id(manifest_path: Path) -> str:
    """"name version sha256-prefix" of a model: a retrained model under the same name counts as another model."""
    m = load_manifest(manifest_path)
    return f"{m.name} {m.version} {m.sha256[:12]}"


def _read_record(json_path: Path) -> dict | None:
    """The case's lesion JSON as a dict, or None when it is missing or unreadable (the case is then redone)."""
    try:
        record = json.loads(Path(json_path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _check_earlier_run(record: dict | None, json_path: Path, path: Path) -> None:
    """OutputExistsError when the case's JSON was made from another input that has the same case name."""
    recorded = (record or {}).get("input")
    if recorded and Path(recorded).resolve() != Path(path).resolve():
        raise OutputExistsError(f"{json_path} holds the results of another input ({recorded}) with the same case name; "
                                "use another output folder, or overwrite=True to replace them")


def settings_changes(recorded: dict | None, settings: dict) -> list[str]:
    """What differs between the settings a case's JSON records and `settings` ("liver_only False -> True", ...)."""
    if not isinstance(recorded, dict):
        return ["not recorded by the run that made the outputs"]
    return [f"{key} {recorded.get(key)} -> {value}" for key, value in settings.items() if recorded.get(key) != value]


def _unrecorded_outputs(record: dict, paths: dict[str, Path]) -> list[str]:
    """Label files wanted now that the run which wrote the JSON did not write (they come from another run)."""
    written = record.get("outputs") or {}
    return [paths[kind].name for kind in paths if kind in LABEL_KEYS and written.get(kind) != paths[kind].name]


def plan_case(path: Path, paths: dict[str, Path], overwrite: bool, settings: dict | None = None) -> tuple[str, str]:
    """(plan, why): "skipped" when an earlier run finished this case with these settings, "redo" when its files
    are partial, from another run or made with other settings, else "new"; `why` says why a case is redone."""
    if overwrite:
        return ("redo", "") if existing(paths.values()) else ("new", "")
    record = _read_record(paths["json"])
    _check_earlier_run(record, paths["json"], path)
    if not is_complete(paths.values()) or record is None:
        return ("redo", "its outputs were incomplete") if existing(paths.values()) else ("new", "")
    changed = settings_changes(record.get("settings"), settings) if settings is not None else []
    if changed:
        return "redo", f"settings changed ({'; '.join(changed)})"
    unrecorded = _unrecorded_outputs(record, paths)
    if unrecorded:
        return "redo", f"{', '.join(unrecorded)} did not come from the run that wrote its lesion table"
    return SKIPPED, ""


def check_format_fits(path: Path, fmts: list[str]) -> None:
    """Refuse dicom-seg for an input that is not a DICOM series (there are no source instances to reference)."""
    if "dicom-seg" in fmts and not Path(path).is_dir():
        raise InvalidInputError(f"--format dicom-seg needs a DICOM series (a folder of DICOM files) as input; {path} is "
                                "a file, with no DICOM instances for the segmentation to reference (use nifti or seg.nrrd)")


def earlier_formats(json_path: Path) -> list[str]:
    """Label formats that the run which wrote the case's JSON wrote, and whose files are still there."""
    written = (_read_record(json_path) or {}).get("outputs") or {}
    return [fmt for fmt in SUFFIX if isinstance(written.get(fmt), str) and (Path(json_path).parent / written[fmt]).exists()]


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
        result = segment(read_image(path), device=args.device, fast=args.fast, model_set=args.model_set, liver_only=args.liver_only,
                         min_lesion_mm3=args.min_lesion_mm3, threads=args.threads, force=args.force,
                         models_dir=args.models_dir, progress=progress, cancel=cancel)
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
