"""Command-line tool `livertumorseg`: predict, evaluate, info."""
from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from pathlib import Path

from . import __version__, cli_cohort
from .api import segment
from .config import models_dir
from .errors import CancelledError, LiverTumorSegError, OutputExistsError
from .io import case_name, expand_inputs, read_image, seg_nrrd_image, write_image, write_table
from .result import SegmentationResult

log = logging.getLogger("livertumorseg")
SUFFIX = {"nifti": "_seg.nii.gz", "seg.nrrd": ".seg.nrrd"}


def _parser() -> argparse.ArgumentParser:
    """Argument parser for all sub-commands."""
    p = argparse.ArgumentParser(prog="livertumorseg", description="Liver and liver-tumor segmentation of abdominal CT.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log every step")
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="segment CT files, folders of files, or DICOM series folders")
    pr.add_argument("inputs", nargs="*", type=Path, help="CT files (.nii/.nii.gz/.nrrd/.nhdr/.mha/.mhd) or folders")
    pr.add_argument("--demo", action="store_true", help="segment the built-in demo CT")
    pr.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    pr.add_argument("--format", choices=sorted(SUFFIX), default="nifti", help="label map format (default nifti)")
    pr.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    pr.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    pr.add_argument("--threads", type=int, default=None, help="CPU threads for inference (default: all cores)")
    pr.add_argument("--fast", action="store_true", help="tumor stage at the liver stage's coarse spacing")
    pr.add_argument("--liver-only", action="store_true", help="skip the tumor stage")
    pr.add_argument("--min-lesion-mm3", type=float, default=None, help="drop tumors smaller than this (default 50)")
    pr.add_argument("--force", action="store_true", help="segment images that do not look like CT")
    pr.add_argument("--models-dir", type=Path, default=None, help="folder with liver/tumor .onnx + .json")
    cli_cohort.add_arguments(pr)
    ev = sub.add_parser("evaluate", help="compare predicted label maps with references")
    ev.add_argument("pred", type=Path, help="a predicted label map or a folder of them")
    ev.add_argument("ref", type=Path, help="the reference label map or a folder of them")
    ev.add_argument("-o", "--output", type=Path, default=Path("evaluation"), help="folder for metrics.csv and summary.md")
    info = sub.add_parser("info", help="versions, models and execution providers")
    info.add_argument("--models-dir", type=Path, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return {"predict": cmd_predict, "evaluate": cmd_evaluate, "info": cmd_info}[args.command](args)
    except KeyboardInterrupt:
        print("\ninterrupted: no partial outputs were written", file=sys.stderr)
        return 130
    except LiverTumorSegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def output_paths(out_dir: Path, case: str, fmt: str) -> dict[str, Path]:
    """Where one case's outputs go."""
    return {"labels": out_dir / f"{case}{SUFFIX[fmt]}", "lesions": out_dir / f"{case}_lesions.csv"}


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


def run_case(path: Path, args: argparse.Namespace, case: str | None = None) -> tuple[SegmentationResult, dict[str, Path]]:
    """Segment one case (named `case`, default from its file name) and write its outputs; raise on any failure."""
    case = case or case_name(path)
    paths = output_paths(args.output, case, args.format)
    if not args.overwrite:
        for p in paths.values():
            if p.exists():
                raise OutputExistsError(f"output exists: {p} (use --overwrite to replace it)")
    bar, progress = _progress_bar(case)
    cancel = threading.Event()
    try:
        result = segment(read_image(path), device=args.device, fast=args.fast, liver_only=args.liver_only,
                         min_lesion_mm3=args.min_lesion_mm3, threads=args.threads, force=args.force,
                         models_dir=args.models_dir, progress=progress, cancel=cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        bar.close()
    image = result.label_image()
    t0 = time.perf_counter()
    write_image(seg_nrrd_image(image) if args.format == "seg.nrrd" else image, paths["labels"], overwrite=args.overwrite)
    rows = [lesion.row() for lesion in result.lesions]
    write_table(rows, paths["lesions"], overwrite=args.overwrite, extra={"case": case, "input": str(path), **result.summary(),
                "timings_s": {k: round(v, 3) for k, v in result.timings.items()}, "warnings": result.warnings})
    result.timings["write"] = time.perf_counter() - t0
    return result, paths


def cmd_predict(args: argparse.Namespace) -> int:
    """Segment every input; report failures and go on; non-zero exit if any case failed."""
    from .data import DEMO_CT

    if cli_cohort.wanted(args):
        return cli_cohort.run(args)
    inputs = expand_inputs(args.inputs) + ([DEMO_CT] if args.demo else [])
    if not inputs:
        print("error: no inputs (give CT files or folders, or --demo)", file=sys.stderr)
        return 2
    rows, failed = [], 0
    for path in inputs:
        try:
            result, paths = run_case(path, args)
        except LiverTumorSegError as exc:
            failed += 1
            kind = "cancelled" if isinstance(exc, CancelledError) else "failed"
            print(f"{case_name(path)}: {kind}: {exc}", file=sys.stderr)
            continue
        for w in result.warnings:
            print(f"{case_name(path)}: warning: {w}", file=sys.stderr)
        rows.append({"case": case_name(path), **result.summary(), "labels": str(paths["labels"]), "lesion table": str(paths["lesions"])})
    _print_summary(rows)
    if failed:
        print(f"{failed} of {len(inputs)} case(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _print_summary(rows: list[dict]) -> None:
    """A plain-text table of per-case results on stdout."""
    if not rows:
        return
    cols = ["case", "liver_volume_ml", "tumor_volume_ml", "tumor_burden_percent", "lesions", "seconds", "labels", "lesion table"]
    heads = ["case", "liver ml", "tumor ml", "burden %", "lesions", "time s", "labels", "lesion table"]
    table = [heads] + [[str(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Per-case metrics CSV and a markdown summary."""
    from .evaluation import run_evaluation

    csv_path, md_path = run_evaluation(args.pred, args.ref, args.output)
    print(Path(md_path).read_text())
    print(f"per-case metrics: {csv_path}\nsummary: {md_path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print versions, models (with manifest metrics) and execution providers."""
    import onnxruntime
    import SimpleITK

    from .manifest import load_manifest

    print(f"livertumorseg {__version__}\nonnxruntime {onnxruntime.__version__} providers: {', '.join(onnxruntime.get_available_providers())}")
    print(f"SimpleITK {SimpleITK.Version.VersionString()}\nPython {sys.version.split()[0]}")
    folder = models_dir(args.models_dir)
    print(f"models folder: {folder}")
    for stage in ("liver", "tumor"):
        path = folder / f"{stage}.json"
        if not path.is_file():
            print(f"  {stage}: missing ({path})")
            continue
        m = load_manifest(path)
        print(f"  {stage}: {m.name} v{m.version}, spacing {m.spacing} mm, patch {m.patch_size}, classes {m.classes}")
        for key, value in m.metrics.items():
            print(f"      {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
