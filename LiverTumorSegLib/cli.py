"""Command-line tool `livertumorseg`: predict, evaluate, info."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path

from . import __version__, cli_cohort
from .api import make_config, segment, selected_model_set
from .config import models_dir
from .dicom_seg import SEG_SUFFIX, write_dicom_seg
from .dicom_sr import SR_SUFFIX, write_dicom_sr
from .errors import CancelledError, InvalidInputError, LiverTumorSegError, OutputExistsError
from .io import expand_inputs, read_image, seg_nrrd_image, write_image, write_table
from .manifest import load_manifest
from .modality import MODALITIES
from .model_sets import list_model_sets
from .outputs import SKIPPED, case_names_in, existing, is_complete
from .result import SegmentationResult
from .runtime import resolve_device, verified_manifest

log = logging.getLogger("livertumorseg")
SUFFIX = {"nifti": "_seg.nii.gz", "seg.nrrd": ".seg.nrrd", "dicom-seg": SEG_SUFFIX}
DEVICES = ("auto", "cpu", "cuda")
#: API keywords named in library messages, and the CLI flags that mean the same.
CLI_WORDS = {"force=True": "--force", "overwrite=True": "--overwrite", "modality='mr'": "--modality mr", "modality='ct'": "--modality ct"}


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, got {text}")
    return value


def formats(text: str) -> list[str]:
    """argparse type: one or more output formats, comma-separated (`nifti,dicom-seg`)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in SUFFIX]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown format {', '.join(unknown) or text!r}: choose from {', '.join(SUFFIX)}")
    return list(dict.fromkeys(names))


def _verbose_flag(parser: argparse.ArgumentParser, default=False) -> None:
    """-v/--verbose, accepted before and after the sub-command."""
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log every step")


def _add_predict(sub) -> None:
    """The `predict` sub-command: inputs, outputs, model options, run options."""
    pr = sub.add_parser("predict", help="segment CT files, folders of files, or DICOM series folders")
    _verbose_flag(pr, argparse.SUPPRESS)
    pr.set_defaults(usage_error=pr.error)  # usage errors found after parsing show this sub-command's usage
    pr.add_argument("inputs", nargs="*", type=Path, help="CT files (.nii/.nii.gz/.nrrd/.nhdr/.mha/.mhd) or folders")
    pr.add_argument("--demo", action="store_true", help="segment the built-in demo CT")
    out = pr.add_argument_group("outputs")
    out.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    out.add_argument("--format", dest="formats", type=formats, default=["nifti"], metavar="FORMAT[,FORMAT]",
                     help=f"label map format(s): {', '.join(SUFFIX)} (default nifti); dicom-seg, for DICOM series "
                          "input, writes a DICOM SEG and a DICOM SR of the lesion measurements")
    out.add_argument("--overwrite", action="store_true", help="redo cases whose outputs exist (default: skip complete cases)")
    model = pr.add_argument_group("segmentation")  # model choice and what is kept
    model.add_argument("--model-set", default=None, metavar="NAME",
                       help="model set to run (see `livertumorseg info`; default: the models folder's default set)")
    model.add_argument("--fast", action="store_true", help='use the fast model set ("fast"); same as --model-set fast')
    model.add_argument("--liver-only", action="store_true", help="skip the tumor stage")
    model.add_argument("--models-dir", type=Path, default=None,
                       help="models folder: sets.json with model sets, or liver/tumor .onnx + .json (one set)")
    model.add_argument("--min-lesion-mm3", type=non_negative_float, default=None, help="drop tumors smaller than this (default 50)")
    model.add_argument("--force", action="store_true", help="segment images that do not look like CT")
    model.add_argument("--modality", choices=MODALITIES, default=None,
                       help="ct or mr (default: a DICOM series' Modality tag, else ct); MR: liver only")
    run = pr.add_argument_group("run")
    run.add_argument("--device", choices=DEVICES, default="auto",
                     help="where the networks run: auto (CUDA when ONNX Runtime has it, else CPU), cpu or cuda")
    run.add_argument("--threads", type=positive_int, default=None, help="CPU threads for inference (default: all cores)")
    cli_cohort.add_arguments(pr)


def _parser() -> argparse.ArgumentParser:
    """Argument parser for all sub-commands."""
    p = argparse.ArgumentParser(prog="livertumorseg", description="Liver and liver-tumor segmentation of abdominal CT.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _verbose_flag(p)
    sub = p.add_subparsers(dest="command", required=True)
    _add_predict(sub)
    ev = sub.add_parser("evaluate", help="compare predicted label maps with references")
    _verbose_flag(ev, argparse.SUPPRESS)
    ev.add_argument("pred", type=Path, help="a predicted label map or a folder of them")
    ev.add_argument("ref", type=Path, help="the reference label map or a folder of them")
    ev.add_argument("-o", "--output", type=Path, default=Path("evaluation"),
                    help="folder for metrics.csv and summary.md (default ./evaluation)")
    ev.add_argument("--overwrite", action="store_true", help="replace metrics.csv and summary.md if they exist")
    info = sub.add_parser("info", help="versions, models and devices")
    _verbose_flag(info, argparse.SUPPRESS)
    info.add_argument("--models-dir", type=Path, default=None)
    return p


def cli_words(message: str) -> str:
    """A library message with API keywords replaced by the CLI flags that mean the same."""
    for keyword, flag in CLI_WORDS.items():
        message = message.replace(keyword, flag)
    return message


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "predict":
            check_predict_args(args)
        return {"predict": cmd_predict, "evaluate": cmd_evaluate, "info": cmd_info}[args.command](args)
    except KeyboardInterrupt:
        print("\ninterrupted: no partial outputs were written", file=sys.stderr)
        return 130
    except LiverTumorSegError as exc:
        print(f"error: {cli_words(str(exc))}", file=sys.stderr)
        return 2


def check_predict_args(args: argparse.Namespace) -> None:
    """Usage errors found before any case runs (exit 2): output folder, device, models."""
    if args.output.exists() and not args.output.is_dir():
        args.usage_error(f"-o/--output {args.output} is a file; give a folder for the outputs")
    try:
        resolve_device(args.device)
        mset = selected_model_set(make_config(models_dir=args.models_dir, model_set=args.model_set, fast=args.fast))
        stages = {"liver": mset.liver} if args.liver_only or mset.tumor is None else {"liver": mset.liver, "tumor": mset.tumor}
        for stage, path in stages.items():
            manifest, _ = verified_manifest(path, stage)
            if stage == "liver" and args.modality:
                manifest.input_for(args.modality)  # a liver network that takes no MR says so before any case runs
    except LiverTumorSegError as exc:
        args.usage_error(str(exc))


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


def _check_earlier_run(json_path: Path, path: Path) -> None:
    """OutputExistsError when the case's JSON was made from another input that has the same case name."""
    try:
        recorded = json.loads(json_path.read_text()).get("input")
    except (OSError, ValueError, AttributeError):
        return  # missing or unreadable: the case is incomplete and is redone
    if recorded and Path(recorded).resolve() != Path(path).resolve():
        raise OutputExistsError(f"{json_path} holds the results of another input ({recorded}) with the same case name; "
                                "use another output folder, or overwrite=True to replace them")


def plan_case(path: Path, paths: dict[str, Path], overwrite: bool) -> str:
    """"skipped" when an earlier run finished this case, "redo" when it left part of it, else "new"."""
    if overwrite:
        return "redo" if existing(paths.values()) else "new"
    _check_earlier_run(paths["json"], path)
    if is_complete(paths.values()):
        return SKIPPED
    return "redo" if existing(paths.values()) else "new"


def check_format_fits(path: Path, fmts: list[str]) -> None:
    """Refuse dicom-seg for an input that is not a DICOM series (there are no source instances to reference)."""
    if "dicom-seg" in fmts and not Path(path).is_dir():
        raise InvalidInputError(f"--format dicom-seg needs a DICOM series (a folder of DICOM files) as input; {path} is "
                                "a file, with no DICOM instances for the segmentation to reference (use nifti or seg.nrrd)")


def run_case(path: Path, args: argparse.Namespace, case: str) -> tuple[str, SegmentationResult | None, dict[str, Path]]:
    """Segment one case and write its outputs: ("done" | "skipped", result, paths); raise on any failure."""
    paths = output_paths(args.output, case, args.formats)
    plan = plan_case(path, paths, args.overwrite)
    if plan == SKIPPED:
        return SKIPPED, None, paths
    check_format_fits(path, args.formats)
    bar, progress = _progress_bar(case)
    cancel = threading.Event()
    try:
        result = segment(read_image(path), device=args.device, fast=args.fast, model_set=args.model_set, liver_only=args.liver_only,
                         min_lesion_mm3=args.min_lesion_mm3, threads=args.threads, force=args.force,
                         models_dir=args.models_dir, progress=progress, cancel=cancel, modality=args.modality)
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        bar.close()
    t0 = time.perf_counter()
    write_outputs(result, path, case, paths, overwrite=plan == "redo")
    result.timings["write"] = time.perf_counter() - t0
    return "done", result, paths


def write_outputs(result: SegmentationResult, path: Path, case: str, paths: dict[str, Path], overwrite: bool) -> None:
    """Write the label map(s), then the lesion CSV, then the JSON (last: a case with its JSON is complete)."""
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
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()}, "warnings": result.warnings,
        "slice_classes": result.slice_classes()})


def cmd_predict(args: argparse.Namespace) -> int:
    """Segment every input; report failures and go on; non-zero exit if any case failed."""
    from .data import DEMO_CT

    if cli_cohort.wanted(args):
        return cli_cohort.run(args)
    inputs = expand_inputs(list(args.inputs) + ([DEMO_CT] if args.demo else []))
    if not inputs:
        print("error: no inputs (give CT files or folders, or --demo)", file=sys.stderr)
        return 2
    rows, results, counts = [], [], {"done": 0, SKIPPED: 0, "failed": 0}
    for path, case in zip(inputs, case_names_in(args.output, inputs)):
        try:
            status, result, paths = run_case(path, args, case)
        except LiverTumorSegError as exc:
            counts["failed"] += 1
            kind = "cancelled" if isinstance(exc, CancelledError) else "failed"
            print(f"{case}: {kind}: {cli_words(str(exc))}", file=sys.stderr)
            continue
        counts[status] += 1
        if status == SKIPPED:
            print(f"{case}: {SKIPPED}: its outputs are complete from an earlier run (--overwrite redoes it)", file=sys.stderr)
            continue
        for w in result.warnings:
            print(f"{case}: warning: {cli_words(w)}", file=sys.stderr)
        rows.append(summary_row(case, result, paths, args.liver_only))
        results.append(result)
    if results:
        print(what_ran(results[0], args))
    print_summary(rows)
    print(", ".join(f"{n} {word}" for word, n in counts.items() if n) + f" of {len(inputs)} case(s)",
          file=sys.stderr if counts["failed"] else sys.stdout)
    return 1 if counts["failed"] else 0


def what_ran(result: SegmentationResult, args: argparse.Namespace) -> str:
    """One line: which models (and model set) ran, on which device, in which mode."""
    models = ", ".join(f"{stage} {m['name']} {m['version']}" for stage, m in result.models.items())
    sets = sorted({m["model_set"] for m in result.models.values() if m.get("model_set")})
    modes = [m for m, on in (("liver only", args.liver_only), ("MR, liver only", result.modality == "mr")) if on]
    return (f"models: {models}" + (f" (model set {', '.join(sets)})" if sets else "")
            + f"; device: {result.device}" + (f"; {', '.join(modes)}" if modes else ""))


def summary_row(case: str, result: SegmentationResult, paths: dict[str, Path], liver_only: bool) -> dict:
    """One case's line of the summary table: numbers, and every file written."""
    summary = result.summary()
    liver_only = liver_only or "tumor" not in result.models
    tumor = "not run" if liver_only else "none found" if not result.lesions else str(summary["tumor_volume_ml"])
    labels = [str(p) for k, p in paths.items() if k in SUFFIX or k == "dicom-sr"]
    return {"case": case, "liver ml": str(summary["liver_volume_ml"]), "tumor ml": tumor,
            "burden %": "-" if liver_only else str(summary["tumor_burden_percent"]), "lesions": str(summary["lesions"]),
            "time s": str(summary["seconds"]), "labels": " ".join(labels),
            "lesion table": f"{paths['lesions']} {paths['json']}"}


def print_summary(rows: list[dict]) -> None:
    """A plain-text table of per-case results on stdout."""
    if not rows:
        return
    heads = list(rows[0])
    table = [heads] + [[row[c] for c in heads] for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(heads))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Per-case metrics CSV and a markdown summary."""
    from .evaluation import run_evaluation

    print(f"writing metrics.csv and summary.md to {args.output}{'/' if not str(args.output).endswith('/') else ''}",
          file=sys.stderr)
    csv_path, md_path = run_evaluation(args.pred, args.ref, args.output, overwrite=args.overwrite)
    print(Path(md_path).read_text())
    print(f"per-case metrics: {csv_path}\nsummary: {md_path}")
    return 0


def _print_nested(data: dict, indent: int) -> None:
    """Nested dicts as indented `key: value` lines."""
    for key, value in data.items():
        if isinstance(value, dict):
            print(f"{' ' * indent}{key}:")
            _print_nested(value, indent + 2)
        else:
            print(f"{' ' * indent}{key}: {'n/a' if value is None else value}")


def cmd_info(args: argparse.Namespace) -> int:
    """Print versions, devices, and the models with their manifest metrics."""
    import onnxruntime
    import SimpleITK

    from .runtime import available_devices

    print(f"livertumorseg {__version__}\nPython {sys.version.split()[0]}\nSimpleITK {SimpleITK.Version.VersionString()}")
    hardware = [p for p in onnxruntime.get_available_providers() if p in ("CUDAExecutionProvider", "CPUExecutionProvider")]
    print(f"onnxruntime {onnxruntime.__version__}\ndevices: {', '.join(available_devices())} "
          f"(execution providers {', '.join(hardware)})")
    folder = models_dir(args.models_dir)
    print(f"models folder: {folder}")
    try:
        sets = list_model_sets(folder)
    except LiverTumorSegError as exc:
        print(f"  {cli_words(str(exc))}")
        return 1
    for mset in sets:
        print(f"model set {mset.name}{' (default)' if mset.default else ''}: {mset.description}")
        for line in (f"accuracy: {mset.accuracy}" if mset.accuracy else "", f"speed: {mset.speed}" if mset.speed else ""):
            if line:
                print(f"  {line}")
        for stage, path in (("liver", mset.liver), ("tumor", mset.tumor)):
            _print_model(stage, path, args.verbose)
    return 0


def _headline(metrics: dict) -> dict:
    """Manifest metrics without their per-block / per-case detail (shown with -v)."""
    return {k: _headline(v) if isinstance(v, dict) else v for k, v in metrics.items() if k not in ("blocks", "cases", "note")}


def _print_model(stage: str, path: Path | None, verbose: bool) -> None:
    """One stage of a model set: name, version, grid, classes, credit (and all metrics with -v)."""
    if path is None or not path.is_file():
        print(f"  {stage}: {'none' if path is None else f'missing ({path})'}")
        return
    m = load_manifest(path)
    classes = ", ".join(f"{k} {v}" for k, v in m.classes.items())
    print(f"  {stage}: {m.name} {m.version} ({path.parent.name}/{path.name}), spacing {' x '.join(map(str, m.spacing))} mm, "
          f"patch {' x '.join(map(str, m.patch_size))} voxels, {m.output_activation} classes {classes}, "
          f"accepts {', '.join(x.upper() for x in m.modalities)}")
    if m.credit:
        print(f"    licence {m.credit.get('licence', '?')}; {m.credit.get('citation', '')[:120]}...")
    _print_nested(m.metrics if verbose else _headline(m.metrics), 6)


if __name__ == "__main__":
    sys.exit(main())
