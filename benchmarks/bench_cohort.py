"""Cohort throughput: cases per minute over a folder of clinical-size CTs, serial vs Dask local workers.

    python benchmarks/bench_cohort.py            # 8 cases x 3 configurations, ~5 min on 2 idle cores
    python benchmarks/bench_cohort.py --quick    # 2 small cases, smoke run

Configurations: serial (`livertumorseg predict FOLDER --threads 2`, today's path), 1 worker x 2 threads
and 2 workers x 1 thread (`--workers N --threads T`, a LocalCluster). Every configuration runs in a
fresh process; cases/min = cases / wall time of the whole command (interpreter start, cluster start,
every case read, segmented and written). Peak RSS: for Dask each worker's own (read inside the worker);
for every configuration the largest of the command's processes (wait4 on the command). Saved, never asserted.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from common import CACHE, RESULTS, clinical_ct, image_info, machine, other_load, run_isolated
from suites import batch_folder

CONFIGS = [("serial, 2 threads", None, 2), ("1 worker x 2 threads", 1, 2), ("2 workers x 1 thread", 2, 1)]


def run_config(label: str, workers: int | None, threads: int, folder: Path, n: int, models: list[str]) -> dict:
    """One configuration in a fresh process; its wall time, cases/min and peak memory."""
    out = CACHE / "cohort-output"
    shutil.rmtree(out, ignore_errors=True)
    if workers is None:
        r = run_isolated(["benchmarks/worker_batch.py", str(folder), "-o", str(out), "--threads", str(threads), *models])
    else:
        r = run_isolated(["benchmarks/worker_cohort.py", str(folder), "-o", str(out), "--workers", str(workers),
                          "--threads", str(threads), *models])
    per_case = [json.loads(p.read_text())["timings_s"] for p in sorted(out.glob("*_lesions.json"))]
    r.update(config=label, workers=workers, threads=threads, cases=n, cases_done=len(per_case),
             cases_per_minute=round(60 * n / r["process_wall_s"], 2),
             mean_case_s=round(sum(sum(t.values()) for t in per_case) / max(1, len(per_case)), 2))
    print(f"{label}: {n} cases in {r['process_wall_s']:.1f} s = {r['cases_per_minute']:.2f} cases/min; "
          f"largest process {r['peak_rss_mb']:.0f} MB{'' if workers is None else ', workers ' + str(r['worker_peak_rss_mb'])}",
          flush=True)
    return r


def markdown(report: dict) -> str:
    """The results as a markdown table."""
    m = report["machine"]
    lines = [f"# Cohort throughput ({report['started_utc']})", "",
             f"`{report['command']}` — {m['cpu']}, {m['logical_cores']} cores, {m['ram_gb']} GB; "
             f"{report['cases']} cases of {'x'.join(map(str, report['ct']['size_xyz']))} voxels.", "",
             f"Other load at start: {report['other_load_at_start'] or 'none'}; at end: {report['other_load_at_end'] or 'none'}.", "",
             "| configuration | wall s | cases/min | mean s per case (in its process) | peak RSS per worker MB | largest process of the command MB |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        workers = ", ".join(f"{x:.0f}" for x in r.get("worker_peak_rss_mb", [])) or "–"
        lines.append(f"| {r['config']} | {r['process_wall_s']:.1f} | {r['cases_per_minute']:.2f} | {r['mean_case_s']:.2f} | "
                     f"{workers} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the three configurations and save results/cohort.{json,md}."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 small cases (smoke run)")
    p.add_argument("--cases", type=int, default=8)
    p.add_argument("--models-dir", type=Path, default=None)
    p.add_argument("--data", type=Path, default=None, help="shared data folder (default ../shared/data)")
    args = p.parse_args(argv)
    n = 2 if args.quick else args.cases
    ct = clinical_ct(1.0, args.data, quick=args.quick)
    folder = batch_folder(ct, n)
    models = ["--models-dir", str(args.models_dir)] if args.models_dir else []
    report = {"command": "python benchmarks/bench_cohort.py " + " ".join(argv or sys.argv[1:]), "cases": n,
              "started_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": machine(),
              "other_load_at_start": other_load(), "ct": image_info(ct)}
    report["rows"] = [run_config(label, w, t, folder, n, models) for label, w, t in CONFIGS]
    report["other_load_at_end"] = other_load()
    out = CACHE / "quick-results" if args.quick else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / "cohort.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "cohort.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
