"""Model sets side by side on the clinical-size CT: ours (each set) and the original pyliverlesionseg, same run.

    python benchmarks/bench_model_sets.py [--sets pyliverlesionseg fast] [--threads 2]
        [--original-dir ~/.cache/pls-original] [--out benchmarks/results]

Each configuration runs in a fresh process (`livertumorseg predict` as a user runs it, cold: model
loading included); wall seconds and the process's own peak RSS come from `common.run_isolated`. The
original runs through ../shared/tools/pyliverlesionseg-original (its README sets up `--original-dir`;
`--no-crop`, since its crop heuristic needs lungs and hips in view) when that folder has a venv; the row
says "not run" otherwise. Targets (issue 9): fast set <= 15 s, accurate set <= 30 s, 2 threads.
Prints numbers and ratios; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import clinical_ct, image_info, machine, other_load  # noqa: E402

TARGETS_S = {"fast": 15.0, "pyliverlesionseg": 30.0}
WORKER = """
import json, sys, time
from LiverTumorSegLib.cli import main
t = time.perf_counter(); rc = main(sys.argv[1:])
print("BENCH-RESULT " + json.dumps({"rc": rc, "inner_s": time.perf_counter() - t}), flush=True)
"""


def run_ours(ct: Path, model_set: str, threads: int) -> dict:
    """One cold `predict` of `ct` with `model_set`: wall seconds, peak RSS, stage timings from the JSON."""
    from common import run_isolated

    with tempfile.TemporaryDirectory() as out:
        r = run_isolated(["-c", WORKER, "predict", str(ct), "-o", out, "--model-set", model_set, "--threads", str(threads),
                          "--device", "cpu"])
        (js,) = Path(out).glob("*_lesions.json")
        info = json.loads(js.read_text())
    return {"config": f"ours: {model_set}", "wall_s": r["process_wall_s"], "peak_rss_mb": r["peak_rss_mb"],
            "stages_s": info.get("timings_s", {}), "liver_ml": info.get("liver_volume_ml"), "lesions": len(info.get("lesions", []))}


def run_original(ct: Path, tool: Path, threads: int) -> dict:
    """The original pyliverlesionseg pipeline (reference tool, --no-crop) on `ct`, or a 'not run' row."""
    python = tool / "venv" / "bin" / "python"
    if not python.is_file():
        return {"config": "original pyliverlesionseg 0.3", "wall_s": None, "note": f"not run: no {python}"}
    import subprocess

    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        proc = subprocess.Popen([str(python), str(tool / "run_peer.py"), str(ct), f"{out}/seg.nii.gz", "--no-crop",
                                 "--threads", str(threads), "--json", f"{out}/t.json"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        wall = time.perf_counter() - t
        rc = os.waitstatus_to_exitcode(status)
        timings = json.loads(Path(f"{out}/t.json").read_text()) if rc == 0 else {}
    return {"config": "original pyliverlesionseg 0.3 (--no-crop)", "wall_s": round(wall, 1),
            "peak_rss_mb": round(usage.ru_maxrss * 1024 / 1e6, 1), "rc": rc,
            "stages_s": {k: v for k, v in timings.items() if k.endswith("_s")}}


def markdown(rows: list[dict], ct: dict, mach: dict, load: list) -> str:
    """Result table with target ratios."""
    lines = [f"CT: {ct}", f"Machine: {mach.get('cpu')}, {mach.get('logical_cores')} logical cores; other load at start: {load or 'none'}", "",
             "| configuration | wall s | peak RSS MB | target s | wall / target |", "|---|---|---|---|---|"]
    for r in rows:
        name = r["config"].removeprefix("ours: ")
        target = TARGETS_S.get(name)
        ratio = f"{r['wall_s'] / target:.2f}" if target and r.get("wall_s") else ""
        lines.append(f"| {r['config']} | {r.get('wall_s') or r.get('note')} | {r.get('peak_rss_mb', '')} | {target or ''} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every configuration once, print and save the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=["pyliverlesionseg"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--original-dir", type=Path, default=Path(os.path.expanduser("~/.cache/pls-original")))
    p.add_argument("--no-original", action="store_true")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = p.parse_args(argv)
    ct = clinical_ct()
    load = other_load()
    rows = [run_ours(ct, s, args.threads) for s in args.sets]
    if not args.no_original:
        rows.append(run_original(ct, args.original_dir, args.threads))
    result = {"ct": image_info(ct), "machine": machine(), "other_load_at_start": load, "threads": args.threads, "rows": rows,
              "command": "python benchmarks/bench_model_sets.py " + " ".join(argv or sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model_sets.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(rows, result["ct"], result["machine"], load)
    (args.out / "model_sets.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
