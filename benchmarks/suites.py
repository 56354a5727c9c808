"""The benchmark parts: each runs its configurations in fresh processes and returns plain dicts."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from common import CACHE, clinical_ct, image_info, run_isolated

#: Peer grids (x, y, z) mm: nnU-Net's own MSD-liver spacing, TotalSegmentator normal, TotalSegmentator fast.
PEER_SPACINGS = {"nnU-Net MSD liver (0.77 mm)": (0.77, 0.77, 1.0),
                 "TotalSegmentator normal (1.5 mm)": (1.5, 1.5, 1.5),
                 "TotalSegmentator fast (3 mm)": (3.0, 3.0, 3.0)}
SCALES = (0.25, 0.5, 1.0, 2.0)


def describe_models(models_dir: Path | None) -> dict:
    """Which models are measured: folder, and per stage name, version, checksum, grid, file size and time."""
    from LiverTumorSegLib.config import DEFAULT_MODELS_DIR
    from LiverTumorSegLib.manifest import load_manifest

    folder = Path(models_dir or DEFAULT_MODELS_DIR).resolve()
    if not (folder / "liver.json").is_file():
        raise SystemExit(f"no models in {folder}: wait for the shipped models, or make dev models with "
                         "`python benchmarks/make_dev_models.py` and pass --models-dir benchmarks/cache/devmodels")
    out = {"folder": str(folder), "shipped": folder == DEFAULT_MODELS_DIR.resolve()}
    for stage in ("liver", "tumor"):
        m = load_manifest(folder / f"{stage}.json")
        onnx = folder / m.onnx_file
        out[stage] = {"name": m.name, "version": m.version, "created": m.created, "sha256": m.sha256[:16],
                      "spacing_xyz_mm": list(m.spacing), "patch_zyx": list(m.patch_size),
                      "onnx_mb": round(onnx.stat().st_size / 1e6, 2),
                      "onnx_mtime_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(onnx.stat().st_mtime))}
    return out


def our_configs(quick: bool) -> list[dict]:
    """Configurations of our pipeline to measure."""
    if quick:
        return [{"backend": "onnxruntime", "threads": 2, "fast": False}, {"backend": "torch", "threads": 2, "fast": True}]
    return [{"backend": b, "threads": t, "fast": f} for b in ("onnxruntime", "torch") for t in (2, 1) for f in (False, True)]


def run_ours(ct: Path, models: str, cfg: dict, repeats: int) -> dict:
    """One configuration in a fresh process; cold = first run (sessions created), warm = best later run.

    The PyTorch backend runs once (cold only): it is the slow reference, and the time budget is shared.
    """
    repeats = repeats if cfg["backend"] == "onnxruntime" else 1
    args = ["benchmarks/worker_ours.py", "--ct", str(ct), "--models-dir", models, "--threads", str(cfg["threads"]),
            "--backend", cfg["backend"], "--repeats", str(repeats)] + (["--fast"] if cfg["fast"] else [])
    r = run_isolated(args)
    runs = r["runs"]
    r.update(cfg, cold_s=runs[0]["end_to_end_s"], warm_s=min((x["end_to_end_s"] for x in runs[1:]), default=None))
    return r


def bench_ours(ct: Path, models: str, repeats: int, quick: bool) -> list[dict]:
    """Our pipeline on the clinical-size CT, every configuration."""
    results = []
    for cfg in our_configs(quick):
        r = run_ours(ct, models, cfg, repeats)
        print(f"ours {cfg['backend']:11s} {cfg['threads']} thr {'fast  ' if cfg['fast'] else 'normal'}: "
              f"{r['cold_s']:.2f} s cold, {r['warm_s'] or float('nan'):.2f} s warm, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        results.append(r)
    return results


def bench_peers(ct: Path, samples: int, quick: bool) -> list[dict]:
    """The nnU-Net 3d_fullres network over the same CT at the three peer spacings (2 threads).

    ONNX Runtime is used for every pass (it ran the peer faster than PyTorch here, so the ratios are
    conservative); the 3 mm pass is repeated in PyTorch, nnU-Net's own runtime, for reference.
    """
    patch = 64 if quick else 128  # 64 is the smallest patch a 6-stage U-Net accepts (2^5 down-sampling, InstanceNorm needs > 1 voxel)
    runtime = "torch" if quick else "onnxruntime"
    if runtime == "onnxruntime":  # export in its own process so it does not count in any peak RSS
        run_isolated(["benchmarks/worker_peer.py", "--ct", str(ct), "--spacing", "3", "3", "3", "--patch", str(patch), "--export-only"])
    jobs = [(name, sp, runtime) for name, sp in PEER_SPACINGS.items()]
    if not quick:
        jobs.append(("TotalSegmentator fast (3 mm)", PEER_SPACINGS["TotalSegmentator fast (3 mm)"], "torch"))
    results = []
    for name, spacing, rt in jobs:
        r = run_isolated(["benchmarks/worker_peer.py", "--ct", str(ct), "--spacing", *map(str, spacing), "--threads", "2",
                          "--samples", str(samples), "--patch", str(patch), "--runtime", rt])
        r["name"] = name
        print(f"peer {name} [{rt}]: {r['windows']} windows ({r['windows_run']} run), {r['mean_window_s']:.2f} s/window, "
              f"pass {'~' if r['estimated'] else ''}{r['pass_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        results.append(r)
    return results


def bench_scaling(data: Path | None, models: str, quick: bool, out: Path) -> dict:
    """End to end and peak RSS (ONNX Runtime, 2 threads, normal) for four volume sizes, and the plot."""
    from plot import plot_scaling

    rows = []
    for scale in (SCALES[:1] + SCALES[2:3] if quick else SCALES):
        ct = clinical_ct(scale, data, quick=quick)
        r = run_ours(ct, models, {"backend": "onnxruntime", "threads": 2, "fast": False}, 1)
        rows.append({"scale": scale, **image_info(ct), "end_to_end_s": r["cold_s"], "peak_rss_mb": r["peak_rss_mb"],
                     "stages_s": r["runs"][0]["stages_s"], "patches": r["runs"][0]["patches"]})
        print(f"scaling {scale:g}x ({rows[-1]['voxels'] / 1e6:.1f} M voxels): {r['cold_s']:.2f} s, {r['peak_rss_mb']:.0f} MB", flush=True)
    png = out / "scaling.png"
    plot_scaling(rows, png)
    return {"rows": rows, "plot": str(png)}


def batch_folder(ct: Path, n: int) -> Path:
    """A folder of `n` cases (links to the clinical-size CT) under benchmarks/cache."""
    folder = CACHE / f"batch{n}_{ct.name.split('.')[0]}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        link = folder / f"case{i}.nii.gz"
        if not link.exists():
            os.symlink(ct.resolve(), link)
    return folder


def bench_batch(ct: Path, models: str, quick: bool) -> list[dict]:
    """Cases per minute of `livertumorseg predict` over a folder of cases (normal and --fast, 2 threads)."""
    n = 2 if quick else 5
    folder = batch_folder(ct, n)
    results = []
    for fast in (True,) if quick else (False, True):
        out = CACHE / "batch-output"
        shutil.rmtree(out, ignore_errors=True)
        args = ["benchmarks/worker_batch.py", str(folder), "-o", str(out), "--threads", "2", "--models-dir", models]
        r = run_isolated(args + (["--fast"] if fast else []))
        per_case = [json.loads(p.read_text())["timings_s"] for p in sorted(out.glob("*_lesions.json"))]
        r.update(fast=fast, cases=n, cases_per_minute=round(60 * n / r["process_wall_s"], 2), per_case_timings_s=per_case)
        print(f"batch {'fast' if fast else 'normal'}: {n} cases in {r['process_wall_s']:.1f} s = {r['cases_per_minute']:.1f} cases/min, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        results.append(r)
    return results
