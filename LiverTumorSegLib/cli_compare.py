"""`livertumorseg compare BASELINE FOLLOWUP -o OUT`: two time points of one patient, lesion by lesion."""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from .followup import CompareConfig, compare, write_comparison
from .followup.outputs import comparison_paths
from .io import case_name

TABLE = ("track_id", "status", "baseline_id", "followup_id", "baseline_ml", "followup_ml", "change_percent",
         "baseline_diameter_mm", "followup_diameter_mm")


def add_parser(sub) -> None:
    """The `compare` sub-command."""
    p = sub.add_parser("compare", help="compare a baseline and a follow-up CT of one patient, lesion by lesion",
                       description="Each time point is a CT file, a DICOM series folder, or the output folder of an "
                                   "earlier `predict` run (nothing is segmented twice).")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log every step")
    p.set_defaults(usage_error=p.error)
    p.add_argument("baseline", type=Path, help="the earlier CT (or earlier predict outputs)")
    p.add_argument("followup", type=Path, help="the later CT (or earlier predict outputs)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--name", default=None, help="output file prefix (default: <followup case>_vs_<baseline case>)")
    p.add_argument("--baseline-labels", type=Path, default=None, help="label map of the baseline (0/1/2, on its grid)")
    p.add_argument("--followup-labels", type=Path, default=None, help="label map of the follow-up (0/1/2, on its grid)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs of an earlier comparison of the same name")
    p.add_argument("--force", action="store_true", help="compare even when the DICOM tags name different patients")
    p.add_argument("--no-deformable", action="store_true", help="stop after the affine registration (faster)")
    seg = p.add_argument_group("segmentation (for a CT given without labels)")
    seg.add_argument("--model-set", default=None, metavar="NAME")
    seg.add_argument("--models-dir", type=Path, default=None)
    seg.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    seg.add_argument("--threads", type=int, default=None, help="CPU threads for inference")


def run(args: argparse.Namespace) -> int:
    """Run the comparison, write its outputs, print the change table and the summary."""
    from .text_table import print_summary

    if args.output.exists() and not args.output.is_dir():
        args.usage_error(f"-o/--output {args.output} is a file; give a folder for the outputs")
    name = args.name or f"{case_name(args.followup)}_vs_{case_name(args.baseline)}"
    paths = comparison_paths(args.output, name)
    there = [str(p) for p in paths.values() if p.exists()]
    if there and not args.overwrite:  # before any work: a comparison takes minutes
        args.usage_error(f"outputs exist: {', '.join(there)} (--overwrite replaces them)")
    cfg = CompareConfig(force=args.force)
    if args.no_deformable:
        cfg = replace(cfg, registration=replace(cfg.registration, deformable=False))
    result = compare(args.baseline, args.followup, baseline_labels=args.baseline_labels, followup_labels=args.followup_labels,
                     config=cfg, model_set=args.model_set, models_dir=args.models_dir, device=args.device,
                     threads=args.threads)
    write_comparison(result, args.output, name, overwrite=args.overwrite)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print_summary([{k: "-" if row[k] in (None, "") else str(row[k]) for k in TABLE} for row in result.rows()])
    print_report(result.summary())
    print(f"outputs: {paths['csv']} (and .json), {paths['baseline_tracks'].name}, {paths['followup_tracks'].name}, "
          f"{paths['transform'].name}")
    return 0


def print_report(summary: dict) -> None:
    """The summary lines: alignment, volumes, counts per status, the RECIST-style aid."""
    reg, aid = summary["registration"], summary["recist_liver"]
    print(f"registration ({reg['stage']}): liver Dice {reg['liver_dice']:.3f}, surface distance {reg['liver_assd_mm']} mm "
          f"(HD95 {reg['liver_hd95_mm']} mm)")
    print(f"tumor volume: {summary['baseline_tumor_ml']} ml -> {summary['followup_tumor_ml']} ml "
          f"({summary['tumor_change_percent'] if summary['tumor_change_percent'] is not None else 'n/a'} %); burden "
          f"{summary['baseline_burden_percent']} % -> {summary['followup_burden_percent']} % of the liver")
    print("lesions: " + ", ".join(f"{n} {s}" for s, n in summary["status_counts"].items() if n) or "lesions: none")
    print(f"RECIST 1.1-style liver assessment: {aid['category']} (sum of target diameters {aid['sum_diameters_baseline_mm']} "
          f"-> {aid['sum_diameters_followup_mm']} mm, {aid['new_lesions']} new of >= 10 mm, "
          f"{aid['new_lesions_below_threshold']} smaller); {aid['note']}")
