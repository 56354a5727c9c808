"""Collect measured cascade metrics (evaluation CSVs) into the JSON that `export --metrics` records in a manifest.

`python -m Training.record_metrics --stage liver --loco Training/runs/loco/loco_metrics.csv
    --training-cases Training/runs/eval_shipped/metrics.csv --note "..." --out Training/runs/liver_metrics.json`
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

KEYS = {
    "liver": ("liver_dice", "liver_assd_mm", "liver_hd95_mm", "liver_rvd"),
    "tumor": ("liver_dice", "tumor_dice", "tumor_assd_mm", "tumor_hd95_mm", "tumor_rvd", "lesion_precision",
              "lesion_recall", "lesion_f1", "lesion_fp", "slice_accuracy"),
}


def read_rows(path: Path, keys: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    """Per-case selected metrics from an evaluation CSV (nan becomes null)."""
    out = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            vals = {k: float(row[k]) for k in keys if k in row}
            out[row["case"]] = {k: (None if math.isnan(v) else round(v, 4)) for k, v in vals.items()}
    return out


def means(cases: dict[str, dict]) -> dict[str, float]:
    """Mean of each metric over the cases where it is defined, with the count."""
    keys = {k for v in cases.values() for k in v}
    out = {}
    for k in sorted(keys):
        vals = [v[k] for v in cases.values() if v.get(k) is not None]
        if vals:
            out[k] = round(sum(vals) / len(vals), 4)
            out[f"{k}_n"] = len(vals)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the metrics JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=sorted(KEYS), required=True)
    p.add_argument("--loco", help="loco_metrics.csv of Training.loco (held-out cases)")
    p.add_argument("--training-cases", help="metrics.csv of Training.evaluate of the shipped models on their training cases")
    p.add_argument("--note", default="", help="what data, which machine, which command")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    result: dict = {"note": args.note}
    if args.loco:
        cases = read_rows(Path(args.loco), KEYS[args.stage])
        result["leave_one_case_out"] = {"cases": cases, "mean": means(cases)}
    if args.training_cases:
        cases = read_rows(Path(args.training_cases), KEYS[args.stage])
        result["shared_data_training_cases"] = {"cases": cases, "mean": means(cases)}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
