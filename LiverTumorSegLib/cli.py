"""Command-line tool `livertumorseg`: predict, evaluate, info."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__, cli_cohort, cli_compare
from .api import make_config, selected_model_set
from .caseplan import SUFFIX
from .caserun import run_case
from .text_table import print_summary
from .config import models_dir
from .errors import CancelledError, LiverTumorSegError
from .io import check_output_folder, expand_inputs, no_inputs_message
from .manifest import load_manifest
from .modality import MODALITIES
from .model_sets import list_model_sets
from .outputs import SKIPPED, case_names_in
from .result import SegmentationResult
from .runtime import CPU_ENGINES, cpu_engine_description, resolve_cpu_engine, resolve_device, verified_manifest

log = logging.getLogger("livertumorseg")
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
    model.add_argument("--liver-only", action="store_true", help="skip the tumor stage")
    model.add_argument("--tta", action="store_true",
                       help="test-time mirroring of the tumor stage (averages mirrored runs; slower, see the model card)")
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
    run.add_argument("--cpu-engine", choices=CPU_ENGINES, default="auto",
                     help="CPU inference engine: auto (OpenVINO when installed, else ONNX Runtime), openvino, onnxruntime")
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
    cli_compare.add_parser(sub)
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
        return {"predict": cmd_predict, "evaluate": cmd_evaluate, "compare": cli_compare.run, "info": cmd_info}[args.command](args)
    except KeyboardInterrupt:
        print("\ninterrupted: no partial outputs were written", file=sys.stderr)
        return 130
    except LiverTumorSegError as exc:
        print(f"error: {cli_words(str(exc))}", file=sys.stderr)
        return 2


def check_predict_args(args: argparse.Namespace) -> None:
    """Usage errors found before any case runs (exit 2): output folder (a folder, writable), device, models."""
    if args.output.exists() and not args.output.is_dir():
        args.usage_error(f"-o/--output {args.output} is a file; give a folder for the outputs")
    try:
        resolve_device(args.device)
        resolve_cpu_engine(args.cpu_engine)
        mset = selected_model_set(make_config(models_dir=args.models_dir, model_set=args.model_set))
        stages = {"liver": mset.liver} if args.liver_only or mset.tumor is None else {"liver": mset.liver, "tumor": mset.tumor}
        for stage, path in stages.items():
            manifest, _ = verified_manifest(path, stage)
            if stage == "liver" and args.modality:
                manifest.input_for(args.modality)  # a liver network that takes no MR says so before any case runs
        check_output_folder(args.output)  # last: the folder is made only for a run that can start
    except LiverTumorSegError as exc:
        args.usage_error(str(exc))


def cmd_predict(args: argparse.Namespace) -> int:
    """Segment every input; report failures and go on; non-zero exit if any case failed."""
    from .data import DEMO_CT

    if cli_cohort.wanted(args):
        return cli_cohort.run(args)
    inputs = expand_inputs(list(args.inputs) + ([DEMO_CT] if args.demo else []))
    if not inputs:
        print(f"error: {no_inputs_message(args.inputs)}", file=sys.stderr)
        return 2
    rows, results, counts = [], [], {"done": 0, SKIPPED: 0, "failed": 0}
    for path, case in zip(inputs, case_names_in(args.output, inputs)):
        try:
            status, result, paths, why = run_case(path, args, case)
        except LiverTumorSegError as exc:
            counts["failed"] += 1
            kind = "cancelled" if isinstance(exc, CancelledError) else "failed"
            print(f"{case}: {kind}: {cli_words(str(exc))}", file=sys.stderr)
            continue
        counts[status] += 1
        if status == SKIPPED:
            print(f"{case}: {SKIPPED}: its outputs are complete from an earlier run (--overwrite redoes it)", file=sys.stderr)
            continue
        if why:
            print(f"{case}: redone: {why}", file=sys.stderr)
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
    engines = sorted({m["engine"] for m in result.models.values() if m.get("engine")})
    modes = [m for m, on in (("liver only", args.liver_only), ("MR, liver only", result.modality == "mr"),
                             ("test-time mirroring", getattr(args, "tta", False))) if on]
    return (f"models: {models}" + (f" (model set {', '.join(sets)})" if sets else "")
            + f"; device: {result.device}" + (f" ({', '.join(engines)})" if engines else "")
            + (f"; {', '.join(modes)}" if modes else ""))


def summary_row(case: str, result: SegmentationResult, paths: dict[str, Path], liver_only: bool) -> dict:
    """One case's line of the summary table: numbers, and every file written."""
    summary = result.summary()
    liver_only = liver_only or ("tumor" not in result.models and result.modality == "mr")
    tumor = tumor_cell(result, liver_only)
    labels = [str(p) for k, p in paths.items() if k in SUFFIX or k == "dicom-sr"]
    liver = (">=" if summary["liver_cut_off_at"] else "") + str(summary["liver_volume_ml"])  # cut off: a lower bound
    return {"case": case, "liver ml": liver, "tumor ml": tumor,
            "burden %": "-" if tumor.startswith("not run") else str(summary["tumor_burden_percent"]), "lesions": str(summary["lesions"]),
            "time s": str(summary["seconds"]), "labels": " ".join(labels),
            "lesion table": f"{paths['lesions']} {paths['json']}"}


def tumor_cell(result: SegmentationResult, liver_only: bool) -> str:
    """The summary's tumor column: volume (ml), "none found", or "not run (why)" when the tumor stage did not run."""
    if "tumor" in result.models:
        return "none found" if not result.lesions else str(result.summary()["tumor_volume_ml"])
    return f"not run ({'liver only' if liver_only else 'no liver' if result.liver_volume_ml == 0 else 'no tumor model'})"


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
    """Print versions, devices and the model sets, one accuracy and one speed line each (-v: every model's details)."""
    import onnxruntime
    import SimpleITK

    from .runtime import available_devices

    print(f"livertumorseg {__version__}, Python {sys.version.split()[0]}, SimpleITK {SimpleITK.Version.VersionString()}, "
          f"onnxruntime {onnxruntime.__version__}")
    hardware = [p for p in onnxruntime.get_available_providers() if p in ("CUDAExecutionProvider", "CPUExecutionProvider")]
    print(f"devices: {', '.join(available_devices())} (execution providers {', '.join(hardware)}); "
          f"CPU engine: {cpu_engine_description()}")
    folder = models_dir(args.models_dir)
    print(f"models folder: {folder}")
    try:
        sets = list_model_sets(folder)
    except LiverTumorSegError as exc:
        print(f"  {cli_words(str(exc))}")
        return 1
    for mset in sets:
        print(f"model set {mset.name}{' (default)' if mset.default else ''}: {mset.description}")
        print(f"  accuracy: {mset.accuracy or 'not measured'}\n  speed: {mset.speed or 'not measured'}")
        for stage, path in (("liver", mset.liver), ("tumor", mset.tumor)) if args.verbose else ():
            _print_model(stage, path)
    if not args.verbose:
        print("(livertumorseg info -v: each model's grid, licence and recorded metrics)")
    return 0


def _print_model(stage: str, path: Path | None) -> None:
    """One stage of a model set: name, version, grid, classes, credit and every recorded metric."""
    if path is None or not path.is_file():
        print(f"  {stage}: {'none' if path is None else f'missing ({path})'}")
        return
    m = load_manifest(path)
    classes = ", ".join(f"{k} {v}" for k, v in m.classes.items())
    print(f"  {stage}: {m.name} {m.version} ({path.parent.name}/{path.name}), spacing {' x '.join(map(str, m.spacing))} mm, "
          f"patch {' x '.join(map(str, m.patch_size))} voxels, {m.output_activation} classes {classes}, "
          f"accepts {', '.join(x.upper() for x in m.modalities)}")
    if m.resampling != "linear" or m.output_resampling != "probability":
        print(f"    runs as its original pipeline: resampling {m.resampling}, windows {m.tile_placement}, "
              f"output {m.output_resampling}")
    if m.credit:
        print(f"    licence {m.credit.get('licence', '?')}; {m.credit.get('citation', '')[:120]}...")
    _print_nested(m.metrics, 6)


if __name__ == "__main__":
    sys.exit(main())
