"""Evaluate the full library cascade (`LiverTumorSegLib.segment`) on a split: per-case CSV, markdown, plots.

`python -m Training.evaluate --config Training/configs/liver.yaml --split val --models-dir LiverTumorSegLib/models`
"""
from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from LiverTumorSegLib import segment  # noqa: E402
from LiverTumorSegLib.evaluation import markdown_summary, write_csv  # noqa: E402
from LiverTumorSegLib.metrics import evaluate_case  # noqa: E402

from .config import load_config  # noqa: E402
from .data.adapters import Case, list_cases, load_case  # noqa: E402
from .data.splits import split_cases  # noqa: E402
from .reporting import save_overlay  # noqa: E402

BOX_METRICS = ("liver_dice", "liver_assd_mm", "liver_hd95_mm", "tumor_dice", "lesion_f1", "slice_accuracy")


def select_cases(cfg_path: str | None, overrides: list[str], split: str, ids: list[str]) -> list[Case]:
    """The cases of `split` (train | val | all) under the config's data settings, or the explicit `ids`."""
    cfg = load_config(cfg_path, overrides)
    cases = list_cases(cfg.data.sources)
    if ids:
        return [c for c in cases if c.case_id in set(ids)]
    train, val = split_cases(cases, cfg.data)
    keep = {"train": set(train), "val": set(val), "all": {c.case_id for c in cases}}[split]
    return [c for c in cases if c.case_id in keep]


def evaluate_one(case: Case, args: argparse.Namespace, out_dir: Path) -> dict:
    """Segment one case with the cascade and score it against its reference labels (on the CT grid)."""
    ct, ref = load_case(case)
    t0 = time.time()
    result = segment(ct, models_dir=args.models_dir, threads=args.threads, model_set=args.model_set, liver_only=args.liver_only,
                     device="cpu", force=True)
    seconds = time.time() - t0
    ref_arr = sitk.GetArrayFromImage(ref)
    row = {"case": case.case_id, **evaluate_case(result.labels, ref_arr, ct.GetSpacing()), "seconds": round(seconds, 2)}
    if not case.tumors_annotated or args.liver_only:
        row = without_tumor_scores(row)
    save_overlay(sitk.GetArrayViewFromImage(ct), ref_arr, result.labels, ct.GetSpacing(),
                 out_dir / "overlays" / f"{case.case_id}.png", case.case_id, ct.GetDirection())
    if args.save_predictions:
        sitk.WriteImage(result.label_image(), str(out_dir / "predictions" / f"{case.case_id}.nii.gz"))
    return row


def without_tumor_scores(row: dict) -> dict:
    """The row with tumor, lesion and slice scores undefined (nan): its reference does not annotate tumors."""
    out = {}
    for k, v in row.items():
        if k.startswith(("tumor_", "lesion", "slice_")):
            v = 0 if k.endswith("_voxels") else float("nan")
        out[k] = v
    return out


def box_plots(rows: list[dict], path: Path) -> None:
    """One box plot (with the individual cases as dots) per headline metric."""
    fig, axes = plt.subplots(1, len(BOX_METRICS), figsize=(3 * len(BOX_METRICS), 3.5))
    for ax, key in zip(axes, BOX_METRICS):
        vals = [float(r[key]) for r in rows if key in r and not np.isnan(float(r[key]))]
        if vals:
            ax.boxplot(vals, widths=0.5)
            ax.scatter(np.ones(len(vals)) + np.random.default_rng(0).uniform(-0.08, 0.08, len(vals)), vals, s=12, zorder=3)
        ax.set_title(f"{key} (n={len(vals)})", fontsize=9)
        ax.set_xticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def report(rows: list[dict], command: str, models_dir: str | None) -> str:
    """Markdown report: provenance, a per-case results table, then the library's metric summary."""
    head = ["# Cascade evaluation", "", f"- command: `{command}`", f"- models: `{models_dir or 'bundled'}`",
            f"- machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}",
            "- metrics on the input CT grid (liver = labels 1+2, tumor = label 2), library `metrics.evaluate_case`",
            "", "| case | liver Dice | liver ASSD mm | liver HD95 mm | liver RVD | tumor Dice | lesion P | lesion R | lesion F1 | slice acc | s |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head.append(f"| {r['case']} | {r['liver_dice']:.4f} | {r['liver_assd_mm']:.2f} | {r['liver_hd95_mm']:.2f} | "
                    f"{r['liver_rvd']:+.3f} | {r['tumor_dice']:.4f} | {r['lesion_precision']:.2f} | {r['lesion_recall']:.2f} | "
                    f"{r['lesion_f1']:.2f} | {r['slice_accuracy']:.3f} | {r['seconds']:.1f} |")
    note = ("\nnan in tumor, lesion and slice columns: the case's reference does not annotate tumors "
            "(e.g. a liver-only silver label), so those scores are undefined and excluded from the means.\n")
    return "\n".join(head) + "\n" + note + "\n" + markdown_summary(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="training config whose data sources and split are evaluated")
    p.add_argument("--split", default="val", choices=("train", "val", "all"))
    p.add_argument("--cases", nargs="*", default=[], help="explicit case ids (override --split)")
    p.add_argument("--models-dir", default=None, help="folder with liver/tumor .onnx + .json (default: bundled)")
    p.add_argument("--out-dir", default="Training/runs/evaluation")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model-set", default=None, help="model set of the models folder (default: its default set)")
    p.add_argument("--liver-only", action="store_true", help="the liver stage alone (tumor scores left undefined)")
    p.add_argument("--save-predictions", action="store_true")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the cascade on every selected case and write metrics.csv, report.md, boxplots.png, overlays."""
    args = parse_args(argv)
    out = Path(args.out_dir)
    for sub in ("overlays", "predictions"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    cases = select_cases(args.config, args.overrides, args.split, args.cases)
    if not cases:
        print("no cases selected", file=sys.stderr)
        return 1
    rows = []
    for case in cases:
        rows.append(evaluate_one(case, args, out))
        print(f"{case.case_id}: liver Dice {rows[-1]['liver_dice']:.4f}, tumor Dice {rows[-1]['tumor_dice']:.4f}", flush=True)
    write_csv(rows, out / "metrics.csv")
    box_plots(rows, out / "boxplots.png")
    command = "python -m Training.evaluate " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    (out / "report.md").write_text(report(rows, command, args.models_dir))
    print(f"wrote {out / 'metrics.csv'}, {out / 'report.md'}, {out / 'boxplots.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
