"""Where the time goes in one end-to-end run (read, segment, write) on the clinical-size CT.

    python benchmarks/profile_pipeline.py [--models-dir DIR] [--threads 2] [--fast]

Samples the run with py-spy (wall clock, `--idle`, 100 Hz; `pip install py-spy==0.4.3`) and
attributes every sample to the deepest LiverTumorSegLib line on its stack, so native work
(ONNX Runtime, SimpleITK, numpy) is charged to the library line that called it. Also profiles
each ONNX model per operator type on one patch (ONNX Runtime's own profiler). Writes
benchmarks/results/profile.md (raw samples stay in benchmarks/cache/).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import CACHE, RESULTS, clinical_ct

RATE = 100
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def inner(args: argparse.Namespace) -> None:
    """The profiled run: exactly worker_ours' single case (read, segment, write)."""
    import worker_ours

    worker_ours.main(["--ct", str(args.ct), "--models-dir", str(args.models_dir), "--threads", str(args.threads),
                      "--repeats", "1"] + (["--fast"] if args.fast else []))


def attribute(raw: Path) -> tuple[Counter, Counter, int]:
    """Samples per library line and per library function (deepest LiverTumorSegLib frame), and the total."""
    lines, funcs, total = Counter(), Counter(), 0
    for row in raw.read_text().splitlines():
        stack, _, count = row.rpartition(" ")
        n = int(count)
        total += n
        frames = [m for f in stack.split(";") if (m := FRAME.match(f.strip()))]
        lib = [m for m in frames if "LiverTumorSegLib/" in m["file"]]
        here = lib[-1] if lib else (frames[-1] if frames else None)
        if here is None:
            continue
        name = Path(here["file"]).name
        lines[f"{name}:{here['line']} {here['func']}"] += n
        funcs[f"{name} {here['func']}"] += n
    return lines, funcs, total


def op_profile(onnx_path: Path, patch: tuple[int, ...], threads: int) -> Counter:
    """Milliseconds per ONNX operator type for one patch (after one warm-up run)."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.enable_profiling = True
    opts.profile_file_prefix = str(CACHE / f"ortprof_{onnx_path.stem}")
    sess = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 1, *patch)).astype(np.float32)
    sess.run(None, {"image": x})
    t0 = time.perf_counter()
    sess.run(None, {"image": x})
    wall = time.perf_counter() - t0
    trace_file = Path(sess.end_profiling())
    trace = json.loads(trace_file.read_text())
    trace_file.unlink()
    per_op = Counter()
    for ev in trace[len(trace) // 2:]:  # the second (warm) run
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            per_op[ev["args"]["op_name"]] += ev["dur"] / 1000
    per_op["(wall, whole patch)"] = wall * 1000
    return per_op


def report(args: argparse.Namespace, raw: Path, tool: str, timings: dict) -> str:
    """Markdown: stage times, top library lines and functions, operator shares per model."""
    lines, funcs, total = attribute(raw)
    out = [f"# Profile of one end-to-end run ({'--fast' if args.fast else 'normal'}, {args.threads} threads, {tool})", "",
           f"`python benchmarks/profile_pipeline.py {' '.join(sys.argv[1:])}` on `{args.ct.name}`, models `{args.models_dir}`.", "",
           "Stage seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()), "",
           f"{total} samples at {RATE} Hz (wall clock). Each sample is charged to the deepest LiverTumorSegLib line on the stack.", "",
           "| share | seconds | library line |", "|---|---|---|"]
    out += [f"| {n / total:.1%} | {n / RATE:.2f} | `{k}` |" for k, n in lines.most_common(18)]
    out += ["", "| share | seconds | library function |", "|---|---|---|"]
    out += [f"| {n / total:.1%} | {n / RATE:.2f} | `{k}` |" for k, n in funcs.most_common(12)]
    from LiverTumorSegLib.manifest import load_manifest

    for stage in ("liver", "tumor"):
        m = load_manifest(args.models_dir / f"{stage}.json")
        ops = op_profile(args.models_dir / m.onnx_file, m.patch_size, args.threads)
        wall = ops.pop("(wall, whole patch)")
        busy = sum(ops.values())
        out += ["", f"ONNX Runtime operators, {stage} model, one {m.patch_size} patch, {args.threads} threads: "
                f"{wall:.0f} ms wall", "", "| operator | ms | share of kernel time |", "|---|---|---|"]
        out += [f"| {op} | {ms:.0f} | {ms / busy:.0%} |" for op, ms in ops.most_common(8)]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Profile, summarise, save."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=Path(__file__).resolve().parents[1] / "LiverTumorSegLib" / "models")
    p.add_argument("--ct", type=Path, default=None, help="default: the cached clinical-size CT")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fast", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS / "profile.md")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.ct = args.ct or clinical_ct(1.0)
    if args.inner:
        inner(args)
        return 0
    raw = CACHE / "profile_pyspy.txt"
    cmd = [sys.executable, __file__, "--inner", "--ct", str(args.ct), "--models-dir", str(args.models_dir), "--threads", str(args.threads)]
    cmd += ["--fast"] if args.fast else []
    spy = shutil.which("py-spy")
    if not spy:
        raise SystemExit("py-spy is not installed: pip install py-spy==0.4.3")
    run = subprocess.run([spy, "record", "--idle", "--rate", str(RATE), "--format", "raw", "--output", str(raw), "--", *cmd],
                         capture_output=True, text=True, check=True)
    result = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("BENCH-RESULT "))[13:])
    text = report(args, raw, "py-spy", result["runs"][0]["stages_s"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
