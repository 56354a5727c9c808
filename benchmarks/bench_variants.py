"""Speed variants the profile points at, with their accuracy cost: time on the clinical-size CT, Dice on shared data.

    python benchmarks/bench_variants.py [--models-dir DIR] [--no-dice]

Variants are applied inside the benchmark process only (the library is not changed):
`overlap` = sliding-window overlap (the library's SlidingWindowConfig); `whole volume` = one window
over each stage's whole grid instead of 50 %-overlapping patches (the ONNX models take any size
that is a multiple of 8). Dice is against the shared references: lits117_roi (expert liver +
tumor labels) and chaos_ct3 (silver liver). ONNX Runtime, 2 threads, one run per process.
Writes benchmarks/results/variants.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import RESULTS, clinical_ct, data_root, run_isolated
from report import table
from suites import describe_models

VARIANTS = {"baseline (overlap 0.5)": [], "overlap 0.25": ["--overlap", "0.25"], "whole volume (1 window per stage)": ["--whole-volume"],
            "--fast": ["--fast"], "--fast + whole volume": ["--fast", "--whole-volume"]}
DICE_CASES = {"lits117_roi": ("lits117_roi/ct.nii.gz", "lits117_roi/label.nii.gz"),
              "chaos_ct3": ("chaos_ct3/ct.nii.gz", "chaos_ct3/liver_silver.nii.gz")}


def run(ct: Path, models: str, extra: list[str], reference: Path | None = None) -> dict:
    """One variant on one CT in a fresh process."""
    args = ["benchmarks/worker_ours.py", "--ct", str(ct), "--models-dir", models, "--threads", "2", "--repeats", "1", *extra]
    r = run_isolated(args + (["--reference", str(reference)] if reference else []))
    return {"end_to_end_s": r["runs"][0]["end_to_end_s"], "stages_s": r["runs"][0]["stages_s"], "patches": r["runs"][0]["patches"],
            "peak_rss_mb": r["peak_rss_mb"], "found": r["runs"][0]["found"]}


def main(argv: list[str] | None = None) -> int:
    """Measure every variant; print and save."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=None)
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--no-dice", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    models = describe_models(args.models_dir)
    ct = clinical_ct(1.0, args.data)
    rows, out = [], {"models": models, "variants": {}}
    for name, extra in VARIANTS.items():
        v = {"clinical": run(ct, models["folder"], extra)}
        for case, (img, ref) in ({} if args.no_dice else DICE_CASES).items():
            v[case] = run(data_root(args.data) / img, models["folder"], extra, data_root(args.data) / ref)
        out["variants"][name] = v
        c = v["clinical"]
        dice = [f"{v[k]['found'].get(m, float('nan')):.3f}" for k, m in (("lits117_roi", "dice_liver"), ("lits117_roi", "dice_tumor"),
                                                                         ("chaos_ct3", "dice_liver")) if k in v]
        rows.append([name, f"{c['end_to_end_s']:.2f}", f"{c['stages_s'].get('stage1_liver', 0):.2f}", f"{c['stages_s'].get('stage2_tumor', 0):.2f}",
                     f"{c['patches'].get('liver', 0)}/{c['patches'].get('tumor', 0)}", f"{c['peak_rss_mb']:.0f}", *dice])
        print(" | ".join(rows[-1]), flush=True)
    head = ["variant", "end to end s", "stage 1 s", "stage 2 s", "patches", "peak RSS MB"]
    head += [] if args.no_dice else ["lits117 liver Dice", "lits117 tumor Dice", "chaos3 liver Dice"]
    md = ["# Speed variants and their accuracy cost", "", f"Models: {models['liver']['name']} / {models['tumor']['name']} "
          f"({'shipped' if models['shipped'] else models['folder']}); clinical-size CT; ONNX Runtime, 2 threads, first run in a fresh process.", ""]
    md += table(head, rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "variants.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out / "variants.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
