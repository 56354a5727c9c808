"""The liver network on MR: the shared CHAOS T2-SPIR volumes (expert liver labels), preprocessing variants tuned on some
patients and reported on the held-out others; then the shipped MR path (`segment(..., modality="mr")`) on all of them.

    python -m Training.evaluate_mr explore --threads 1      # stage-1 variants on the tuning patients (cached)
    python -m Training.evaluate_mr final --threads 1        # the shipped MR path on every patient, overlays, results.md
    python -m Training.evaluate_mr lesions --threads 1      # would the lesion network find false lesions in healthy MR livers?
    python -m Training.evaluate_mr report                   # results.md from the three JSON files

Variants change only the manifest's "mr" entry (normalisation percentiles / fraction, N4 bias field); the threshold and
the opening of the stage-1 probability are varied afterwards on the cached probabilities. Scores: Dice and volume error
(%) of the predicted liver against the expert liver (label 1 of organs.nii.gz) on the MR's own grid. `lesions` runs
the lesion network inside the expert liver with the original's MR lesion normalisation (intensities centred on the
liver's median, scaled so that the liver's range fits [-0.5, 0.5]); CHAOS livers are healthy, so every lesion is false.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import cc3d
import numpy as np
import SimpleITK as sitk

from LiverTumorSegLib import segment
from LiverTumorSegLib.api import load_models, make_config, selected_model_set
from LiverTumorSegLib.cascade import Reporter, cascade, channel, liver_candidate, run_model
from LiverTumorSegLib.metrics import dice, hd95_mm
from LiverTumorSegLib.modality import threshold_at_half
from LiverTumorSegLib.postprocess import compose_labels
from LiverTumorSegLib.resample import resample_like
from LiverTumorSegLib.runtime import load_model_file
from LiverTumorSegLib.windowing import Normalization, RangeNormalization, WindowPreset

from .reporting import save_overlay

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "chaos_mr_t2"
OUT = Path(__file__).resolve().parent / "results" / "mr"
CACHE = Path(__file__).resolve().parent / "cache" / "mr"
TUNE = ("p01", "p02", "p03", "p05")  # choices are made on these ...
HELD_OUT = ("p08", "p10", "p13", "p15")  # ... and reported on these
#: Stage-1 preprocessing variants: the manifest's "mr" entry.
VARIANTS = {
    "original": {"normalization": RangeNormalization().to_dict()},
    "pct1-99": {"normalization": RangeNormalization(1.0, 99.0, 1.0).to_dict()},  # run on p01 only (model card)
    "pct0-99x0.6": {"normalization": RangeNormalization(0.0, 99.0, 0.6).to_dict()},
    "n4+original": {"normalization": RangeNormalization().to_dict(), "n4_bias_field": True},
}
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
OPENINGS = (0, 1, 2)


def read_case(case: str, data: Path) -> tuple[sitk.Image, np.ndarray]:
    """(MR image, expert liver mask (z, y, x) bool) of one patient."""
    mr = sitk.ReadImage(str(data / case / "mr.nii.gz"))
    return mr, sitk.GetArrayFromImage(sitk.ReadImage(str(data / case / "organs.nii.gz"))) == 1


def scores(pred: np.ndarray, ref: np.ndarray, spacing) -> dict:
    """Dice, HD95 (mm), predicted and reference volume (ml) and volume error (%) of a liver mask (z, y, x)."""
    ml = float(np.prod(spacing)) / 1000
    pv, rv = float(pred.sum()) * ml, float(ref.sum()) * ml
    return {"dice": round(float(dice(pred, ref)), 4), "hd95_mm": round(float(hd95_mm(pred, ref, spacing)), 1),
            "pred_ml": round(pv, 1), "ref_ml": round(rv, 1), "volume_error_pct": round(100 * (pv - rv) / rv, 1)}


def stage1_probability(mr: sitk.Image, entry: dict, threads: int) -> sitk.Image:
    """Liver probability of the shipped liver network on its 3 mm grid, with `entry` as the manifest's "mr" entry."""
    cfg = dataclasses.replace(make_config(threads=threads, liver_only=True, model_set="pyliverlesionseg"), modality="mr")
    _, liver, _ = load_models(cfg)
    m = liver.manifest
    liver.manifest = dataclasses.replace(m, modalities={**m.modalities, "mr": entry})
    _, probs = run_model(mr, liver, cfg, None, Reporter())
    return channel(probs, m.class_index("liver"))


def cached_probability(case: str, variant: str, mr: sitk.Image, threads: int, cache: Path) -> sitk.Image:
    """`stage1_probability` of one case and variant, computed once and kept in `cache`."""
    path = cache / f"{case}_{variant}.nii.gz"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(stage1_probability(mr, VARIANTS[variant], threads), str(path))
    return sitk.ReadImage(str(path))


def liver_mask(prob: sitk.Image, mr: sitk.Image, threshold: float, opening: int) -> np.ndarray:
    """The cascade's stage-1 liver on the MR grid (z, y, x) bool, cut at `threshold` with an opening of `opening`
    voxels: its candidate, the kept probability resampled linearly, one component, holes filled."""
    p = threshold_at_half(sitk.GetArrayFromImage(prob), threshold)
    kept = sitk.GetImageFromArray(np.where(liver_candidate(p, opening), p, 0.0).astype(np.float32))
    kept.CopyInformation(prob)
    back = sitk.GetArrayFromImage(resample_like(kept, mr, interpolator=sitk.sitkLinear, default=0.0)) > 0.5
    return compose_labels(back, np.zeros_like(back), voxel_mm3=1.0, min_lesion_mm3=0.0) > 0


def explore(args: argparse.Namespace) -> dict:
    """Scores of every variant x threshold x opening on the tuning patients, and of the --held-out variants on the others."""
    rows = []
    for case in TUNE + HELD_OUT:
        variants = args.variants if case in TUNE else args.held_out
        mr, ref = read_case(case, args.data) if variants else (None, None)
        for variant in variants:
            prob = cached_probability(case, variant, mr, args.threads, args.cache)
            for t in THRESHOLDS:
                for k in OPENINGS:
                    s = scores(liver_mask(prob, mr, t, k), ref, mr.GetSpacing())
                    rows.append({"case": case, "variant": variant, "threshold": t, "opening": k, **s})
                    print(json.dumps(rows[-1]), flush=True)
    return {"rows": rows}


def summarise(rows: list[dict], cases: tuple[str, ...]) -> list[dict]:
    """Median / worst Dice and median |volume error| per (variant, threshold, opening) over `cases`."""
    keys = sorted({(r["variant"], r["threshold"], r["opening"]) for r in rows})
    out = []
    for key in keys:
        sel = [r for r in rows if (r["variant"], r["threshold"], r["opening"]) == key and r["case"] in cases]
        if len(sel) == len(cases):
            d = [r["dice"] for r in sel]
            out.append({"variant": key[0], "threshold": key[1], "opening": key[2], "median_dice": round(float(np.median(d)), 4),
                        "worst_dice": min(d),
                        "median_abs_volume_error_pct": round(float(np.median([abs(r["volume_error_pct"]) for r in sel])), 1)})
    return sorted(out, key=lambda r: -r["median_dice"])


def mr_window(mr: np.ndarray) -> WindowPreset:
    """A display window from the MR's 1st to 99th percentile."""
    lo, hi = np.percentile(mr, [1, 99])
    return WindowPreset("mr", level=float(lo + hi) / 2, width=float(max(hi - lo, 1e-3)))


def final(args: argparse.Namespace) -> dict:
    """The shipped MR path (`segment(..., modality="mr")`) on every patient: scores, seconds, warnings, overlays."""
    rows = []
    for case in TUNE + HELD_OUT:
        mr, ref = read_case(case, args.data)
        t0 = time.perf_counter()
        result = segment(mr, modality="mr", threads=args.threads, model_set="pyliverlesionseg")
        seconds = time.perf_counter() - t0
        pred = result.labels > 0
        rows.append({"case": case, "split": "tune" if case in TUNE else "held-out", **scores(pred, ref, mr.GetSpacing()),
                     "lesion_voxels": int((result.labels == 2).sum()), "seconds": round(seconds, 1), "warnings": result.warnings})
        print(json.dumps(rows[-1]), flush=True)
        if case in args.overlays:
            arr = sitk.GetArrayFromImage(mr)
            save_overlay(arr, ref.astype(np.uint8), result.labels, mr.GetSpacing(), args.out / f"{case}.png",
                         f"CHAOS T2-SPIR {case} ({rows[-1]['split']}): Dice {rows[-1]['dice']:.3f}", mr.GetDirection(),
                         window=mr_window(arr))
    return {"rows": rows, "machine": f"{platform.processor() or platform.machine()}, threads {args.threads}"}


def liver_centred(mr: sitk.Image, liver: np.ndarray) -> sitk.Image:
    """pyliverlesionseg's MR input of its lesion network: MR minus the liver's median, times the largest factor that
    keeps the liver's minimum and maximum within [-0.5, 0.5] (float32, on the MR grid)."""
    a = sitk.GetArrayFromImage(mr).astype(np.float32)
    lo, med, hi = np.min(a[liver]), np.median(a[liver]), np.max(a[liver])
    out = sitk.GetImageFromArray((a - med) * min(0.5 / max(med - lo, 1e-6), 0.5 / max(hi - med, 1e-6)))
    out.CopyInformation(mr)
    return out


def lesions(args: argparse.Namespace) -> dict:
    """Lesion ml (>= the default 50 mm3 minimum) the lesion network marks inside each healthy expert liver."""
    cfg = make_config(threads=args.threads, model_set="pyliverlesionseg")
    tumor = load_model_file(selected_model_set(cfg).tumor, cfg.runtime, "tumor")
    tumor.manifest = dataclasses.replace(tumor.manifest, normalization=Normalization(-1e6, 1e6, 0.0, 1.0))  # pre-normalised
    rows = []
    for case in TUNE + HELD_OUT:
        mr, ref = read_case(case, args.data)
        given = sitk.GetImageFromArray(ref.astype(np.uint8))
        given.CopyInformation(mr)
        labels, _ = cascade(liver_centred(mr, ref), None, tumor, cfg, Reporter(), liver_mask=given)
        ml = float((labels == 2).sum()) * float(np.prod(mr.GetSpacing())) / 1000
        components = int(cc3d.connected_components((labels == 2).astype(np.uint8), connectivity=26).max())
        rows.append({"case": case, "false_lesion_ml": round(ml, 2), "false_lesions": components})
        print(json.dumps(rows[-1]), flush=True)
    return {"rows": rows}


def _table(rows: list[dict], columns: list[str]) -> list[str]:
    """Markdown table lines of `columns` of `rows`."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + [
        "| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]


def report(args: argparse.Namespace) -> dict:
    """Write results.md from explore.json, lesions.json and final.json under --out."""
    explore_data, final_data, lesion_data = (json.loads((args.out / f"{m}.json").read_text()) for m in ("explore", "final", "lesions"))
    held = [r for r in explore_data["rows"] if r["case"] in HELD_OUT]
    lines = ["# Liver on MR: CHAOS T2-SPIR (8 patients, expert liver labels)", "",
             f"Written by `python -m Training.evaluate_mr report` from the JSON files beside it; machine: {final_data['machine']}",
             "(2026-12-03: this project's 2-core AMD EPYC VM while other jobs ran, so the seconds are inflated).",
             f"Tuning patients: {', '.join(TUNE)}; held-out: {', '.join(HELD_OUT)}. Dice and volume error against the expert",
             "liver (label 1 of `organs.nii.gz`) on each MR's own grid. Variant = the liver manifest's \"mr\" entry.", "",
             "## Variants on the tuning patients (median / worst Dice, median |volume error| %)", ""]
    lines += _table(summarise(explore_data["rows"], TUNE), ["variant", "threshold", "opening", "median_dice", "worst_dice", "median_abs_volume_error_pct"])
    lines += ["", "## The same, held-out patients (variants run there)", ""]
    lines += _table(summarise(held, HELD_OUT), ["variant", "threshold", "opening", "median_dice", "worst_dice", "median_abs_volume_error_pct"])
    lines += ["", "## Shipped MR path (`segment(mr, modality=\"mr\")`), every patient", ""]
    lines += _table(final_data["rows"], ["case", "split", "dice", "hd95_mm", "pred_ml", "ref_ml", "volume_error_pct", "lesion_voxels", "seconds"])
    lines += ["", "## Lesion network inside the healthy expert livers (every lesion is false)", ""]
    lines += _table(lesion_data["rows"], ["case", "false_lesion_ml", "false_lesions"])
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    return {}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line: `explore` or `final`."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("explore", "final", "lesions", "report"))
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--held-out", nargs="*", default=[], choices=list(VARIANTS), help="explore: variants also run on the held-out patients")
    p.add_argument("--overlays", nargs="*", default=["p02", "p08", "p15"])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one mode and write its JSON under --out."""
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = {"explore": explore, "final": final, "lesions": lesions, "report": report}[args.mode](args)
    if args.mode == "report":
        return 0
    if args.mode == "explore":
        data["tune_summary"] = summarise(data["rows"], TUNE)
        data["held_out_summary"] = summarise(data["rows"], HELD_OUT)
    (args.out / f"{args.mode}.json").write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
