"""The default model set against the issue-17 targets, beside the original pyliverlesionseg, in one run.

    python benchmarks/bench_default_set.py [--threads 2] [--tta] [--no-original] [--out benchmarks/results]

Configurations, each one cold `livertumorseg predict` in a fresh process (model loading included; wall seconds and
the process's own peak RSS from `common.run_isolated`):
- the default set with the automatic CPU engine (OpenVINO when installed) on the clinical-size CT (458 x 379 x 224);
- the same with `--cpu-engine onnxruntime` (the fallback);
- the same CT padded with air to a 500 mm field of view in plane (625 x 625 x 224): at most 10 % slower, same labels;
- the same CT made 600 mm tall with its own liver-free lower part (`tall_ct`): taller than one liver window;
- with `--tta`, test-time mirroring of the tumor stage;
- the original pyliverlesionseg pipeline (reference tool, `--no-crop`) on the clinical-size CT.
Targets: <= 10 s and <= 3 GB on a CPU with native bf16; <= 15 s in float32 where the CPU has none (this script says
which the CPU has). Also the arithmetic both networks need on this CT, the CPU's nominal float32 peak and the
throughput reached (`compute_floor.py`). Prints numbers and ratios; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model_sets import WORKER, run_original  # noqa: E402
from common import CACHE, clinical_ct, image_info, machine, other_load, run_isolated  # noqa: E402

LARGE_FOV_MM = 500.0
TALL_MM = 600.0


def native_bf16() -> bool:
    """True when this CPU runs bf16 natively (AVX-512 BF16 or AMX), read from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def large_field_ct(ct: Path) -> tuple[Path, tuple[int, int]]:
    """`ct` padded with air (-1024 HU) to a LARGE_FOV_MM field of view in x and y, centred; and the (x, y) offset."""
    import SimpleITK as sitk

    img = sitk.ReadImage(str(ct))
    size = img.GetSize()
    target = [max(n, int(round(LARGE_FOV_MM / s))) for n, s in zip(size[:2], img.GetSpacing()[:2])]
    lo = [(t - n) // 2 for t, n in zip(target, size[:2])]
    hi = [t - n - a for t, n, a in zip(target, size[:2], lo)]
    out = CACHE / f"{ct.name.split('.')[0]}_fov{int(LARGE_FOV_MM)}.nii.gz"
    if not out.is_file():
        sitk.WriteImage(sitk.ConstantPad(img, lo + [0], hi + [0], -1024), str(out), True)
    return out, (lo[0], lo[1])


def tall_ct(ct: Path, labels: np.ndarray) -> tuple[Path, int]:
    """`ct` made taller than the liver window (567 mm) by its own liver-free lower part (below the first slice with
    liver in `labels`, less 5 slices) added below it, mirrored, then once more as it is; and how many slices were added.
    A body of ~600 mm as a chest-abdomen-pelvis CT has, without a second liver."""
    import SimpleITK as sitk

    img = sitk.ReadImage(str(ct))
    hu = sitk.GetArrayFromImage(img)
    free = int(np.flatnonzero(labels.any(axis=(1, 2)))[0]) - 5
    need = int(np.ceil(TALL_MM / img.GetSpacing()[2])) - hu.shape[0]
    below = np.concatenate([hu[:free], hu[:free][::-1]] * 2)[: max(need, 0)]  # added at index 0 (feet side here)
    out = CACHE / f"{ct.name.split('.')[0]}_tall{int(TALL_MM)}.nii.gz"
    if not out.is_file():
        tall = sitk.GetImageFromArray(np.concatenate([below[::-1], hu]))
        tall.SetSpacing(img.GetSpacing())
        tall.SetDirection(img.GetDirection())
        tall.SetOrigin(img.TransformIndexToPhysicalPoint((0, 0, -len(below))))
        sitk.WriteImage(tall, str(out), True)
    return out, len(below)


def run(ct: Path, threads: int, *extra: str) -> tuple[dict, np.ndarray]:
    """One cold predict: (row, label map as (z, y, x))."""
    import SimpleITK as sitk

    with tempfile.TemporaryDirectory() as out:
        r = run_isolated(["-c", WORKER, "predict", str(ct), "-o", out, "--threads", str(threads), "--device", "cpu", *extra])
        (js,) = Path(out).glob("*_lesions.json")
        info = json.loads(js.read_text())
        (seg,) = Path(out).glob("*_seg.nii.gz")
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(seg)))
    engines = sorted({m.get("engine", "") for m in info.get("models", {}).values()})
    row = {"config": " ".join(extra) or "default", "ct": ct.name, "wall_s": r["process_wall_s"], "peak_rss_mb": r["peak_rss_mb"],
           "engine": ", ".join(engines), "stages_s": {k: round(v, 2) for k, v in info.get("timings_s", {}).items()},
           "liver_ml": info.get("liver_volume_ml"), "tumor_ml": info.get("tumor_volume_ml"), "lesions": len(info.get("lesions", []))}
    return row, labels


def compute(ct: Path, labels: np.ndarray, stages_s: dict) -> dict:
    """The arithmetic both networks need on `ct` (whose labels the default run gave) and the throughput the default
    run's two stages reached (`compute_floor.py`)."""
    import SimpleITK as sitk
    from compute_floor import floor

    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(sitk.ReadImage(str(ct)))
    with tempfile.TemporaryDirectory() as tmp:
        sitk.WriteImage(image, f"{tmp}/labels.nii.gz")
        return floor(ct, Path(f"{tmp}/labels.nii.gz"), stages_s.get("stage1_liver", 0) + stages_s.get("stage2_tumor", 0))


def differing_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of voxels whose labels differ."""
    return float(np.mean(a != b))


def markdown(rows: list[dict], header: list[str]) -> str:
    """Result table with target ratios."""
    lines = header + ["", "| configuration | CT | engine | wall s | peak RSS MB | stage 1 s | stage 2 s | liver ml | tumor ml |",
                      "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        st = r.get("stages_s", {})
        s1 = st.get("stage1_liver", st.get("liver_cnn_s", ""))
        s2 = st.get("stage2_tumor", st.get("lesion_cnn_s", ""))
        lines.append(f"| {r['config']} | {r.get('ct', '')} | {r.get('engine', '')} | {r.get('wall_s') or r.get('note')} | "
                     f"{r.get('peak_rss_mb', '')} | {s1} | {s2} | {r.get('liver_ml', '')} | {r.get('tumor_ml', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every configuration once, print and save the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tta", action="store_true", help="also run --tta")
    p.add_argument("--original-dir", type=Path, default=Path(os.path.expanduser("~/.cache/pls-original")))
    p.add_argument("--no-original", action="store_true")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = p.parse_args(argv)
    ct = clinical_ct()
    large, (ox, oy) = large_field_ct(ct)
    load = other_load()
    base, base_labels = run(ct, args.threads)
    ort, ort_labels = run(ct, args.threads, "--cpu-engine", "onnxruntime")
    big, big_labels = run(large, args.threads)
    big_labels = big_labels[:, oy:oy + base_labels.shape[1], ox:ox + base_labels.shape[2]]
    tall, added = tall_ct(ct, base_labels)
    high, high_labels = run(tall, args.threads)
    rows = [base, ort, big, high]
    if args.tta:
        rows.append(run(ct, args.threads, "--tta")[0])
    if not args.no_original:
        rows.append(run_original(ct, args.original_dir, args.threads))
    bf16 = native_bf16()
    target = 10.0 if bf16 else 15.0
    findings = {
        "native_bf16": bf16, "target_s": target, "default_wall_over_target": round(base["wall_s"] / target, 2),
        "default_peak_rss_gb": round(base["peak_rss_mb"] / 1000, 2),
        "large_field_over_clinical": round(big["wall_s"] / base["wall_s"], 3),
        "large_field_labels_differing_fraction": differing_fraction(big_labels, base_labels),
        "tall_over_clinical": round(high["wall_s"] / base["wall_s"], 3),
        "tall_labels_differing_fraction": differing_fraction(high_labels[added:], base_labels),
        "onnxruntime_over_default": round(ort["wall_s"] / base["wall_s"], 2),
        "onnxruntime_labels_differing_fraction": differing_fraction(ort_labels, base_labels),
    }
    findings["compute"] = compute(ct, base_labels, base["stages_s"])
    orig = next((r for r in rows if r["config"].startswith("original") and r.get("wall_s")), None)
    if orig:
        findings["original_over_default"] = round(orig["wall_s"] / base["wall_s"], 2)
    header = [f"CT: {image_info(ct)}", f"Large field of view: {image_info(large)}", f"Tall: {image_info(tall)}",
              f"Machine: {machine().get('cpu')}, {os.cpu_count()} logical cores; native bf16: {bf16}; "
              f"other load at start: {load or 'none'}", f"Threads: {args.threads}",
              "Findings: " + json.dumps(findings)]
    result = {"ct": image_info(ct), "large_ct": image_info(large), "tall_ct": image_info(tall), "machine": machine(), "other_load_at_start": load,
              "threads": args.threads, "rows": rows, "findings": findings,
              "command": "python benchmarks/bench_default_set.py " + " ".join(argv or sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "default_set.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(rows, header)
    (args.out / "default_set.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
