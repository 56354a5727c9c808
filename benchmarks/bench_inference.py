"""Inference benchmark: our cascade vs the nnU-Net / TotalSegmentator approach, side by side, in one run.

    python benchmarks/bench_inference.py            # full run (about 10-15 min on 2 idle cores)
    python benchmarks/bench_inference.py --quick    # smoke run on a small CT (under a minute)

Parts (`--parts`, default all): `ours` (per-stage times, end to end, peak RSS; 1 and 2 threads;
normal and --fast; ONNX Runtime and PyTorch), `peers` (nnU-Net v2 3d_fullres PlainConvUNet at
0.77 x 0.77 x 1, 1.5 and 3 mm), `scaling` (four volume sizes, plot), `batch` (`livertumorseg
predict` over a folder of 5 cases). Every configuration runs in a fresh process, so peak RSS is
that configuration's own. Numbers are printed and saved (JSON + markdown under
benchmarks/results/, or benchmarks/cache/quick-results/ for --quick), never asserted.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from common import CACHE, RESULTS, clinical_ct, image_info, machine, other_load
from report import markdown, summarize
from suites import bench_batch, bench_ours, bench_peers, bench_scaling, describe_models

PARTS = ("ours", "peers", "scaling", "batch")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: small CT, few configurations, tiny peer patch")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--models-dir", type=Path, default=None,
                   help="liver/tumor .onnx + .json (default: the library's shipped models)")
    p.add_argument("--data", type=Path, default=None, help="shared data folder (default ../shared/data)")
    p.add_argument("--repeats", type=int, default=None, help="runs per configuration of ours (default 2; quick 1)")
    p.add_argument("--peer-samples", type=int, default=None, help="windows timed per peer pass (default 3; quick 1)")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts, then print and save the report."""
    args = parse_args(argv)
    q = args.quick
    args.repeats = args.repeats or (1 if q else 2)
    args.peer_samples = args.peer_samples or (1 if q else 3)
    out = args.out or (CACHE / "quick-results" if q else RESULTS)
    busy = other_load()
    if busy:
        print(f"WARNING: the machine is not idle, timings are not meaningful: {busy}", file=sys.stderr)
    t0 = time.perf_counter()
    ct = clinical_ct(1.0, args.data, quick=q)
    report = {"command": "python benchmarks/bench_inference.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
              "quick": q, "started_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "machine": machine(), "other_load_at_start": busy, "models": describe_models(args.models_dir),
              "ct": image_info(ct)}
    models = report["models"]["folder"]
    if "ours" in args.parts:
        report["ours"] = bench_ours(ct, models, args.repeats, q)
    if "peers" in args.parts:
        report["peers"] = bench_peers(ct, args.peer_samples, q)
    if "scaling" in args.parts:
        report["scaling"] = bench_scaling(args.data, models, q, out)
    if "batch" in args.parts:
        report["batch"] = bench_batch(ct, models, q)
    report["other_load_at_end"] = other_load()
    report["total_benchmark_s"] = round(time.perf_counter() - t0, 1)
    report["summary"] = summarize(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "inference.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out / "inference.md").write_text(text)
    print(text)
    print(f"saved {out / 'inference.json'} and {out / 'inference.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
