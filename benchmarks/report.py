"""Ratios, pass/fail against the issue's targets, and the markdown report. Targets are goals, not asserts."""
from __future__ import annotations

STAGES = [("read", "read"), ("read_and_check", "check"), ("load_models", "load models"), ("stage1_liver", "stage 1 liver"),
          ("roi", "ROI"), ("stage2_tumor", "stage 2 tumor"), ("resample_back", "resample back"), ("lesions", "lesions"),
          ("write", "write")]
PRIMARY_PEER_RUNTIME = "onnxruntime"


def find(ours: list[dict], backend: str, threads: int, fast: bool) -> dict | None:
    """The record of one configuration of our pipeline."""
    return next((r for r in ours if (r["backend"], r["threads"], r["fast"]) == (backend, threads, fast)), None)


def _target(name: str, measured: float | None, goal: str, ok: bool | None) -> dict:
    return {"target": name, "measured": measured, "goal": goal,
            "result": "n/a" if ok is None or measured is None else ("PASS" if ok else "FAIL")}


def peer_ratios(report: dict) -> list[dict]:
    """Peer pass time / our end-to-end time (normal and fast; ONNX Runtime, 2 threads, cold)."""
    ours = report.get("ours", [])
    normal, fast = find(ours, "onnxruntime", 2, False), find(ours, "onnxruntime", 2, True)
    rows = []
    for p in report.get("peers", []):
        rows.append({"peer": p["name"], "runtime": p["runtime"], "pass_s": p["pass_s"], "estimated": p["estimated"],
                     "speedup_normal": round(p["pass_s"] / normal["cold_s"], 1) if normal else None,
                     "speedup_fast": round(p["pass_s"] / fast["cold_s"], 1) if fast else None})
    return rows


def summarize(report: dict) -> dict:
    """Headline numbers, ratios to each peer pass, and pass/fail per target."""
    ours = report.get("ours", [])
    normal, fast = find(ours, "onnxruntime", 2, False), find(ours, "onnxruntime", 2, True)
    rss = max((r["peak_rss_mb"] for r in ours if r["threads"] == 2 and r["backend"] == "onnxruntime"), default=None)
    ratios = peer_ratios(report)
    primary = {r["peer"]: r for r in ratios if r["runtime"] == (PRIMARY_PEER_RUNTIME if not report["quick"] else r["runtime"])}

    def speed(name: str) -> float | None:
        row = primary.get(name)
        return row["speedup_normal"] if row else None

    n_s, f_s = (normal or {}).get("cold_s"), (fast or {}).get("cold_s")
    s77, s15, s3 = speed("nnU-Net MSD liver (0.77 mm)"), speed("TotalSegmentator normal (1.5 mm)"), speed("TotalSegmentator fast (3 mm)")
    targets = [
        _target("end to end, normal, 2 threads (s)", n_s, "<= 15", None if n_s is None else n_s <= 15),
        _target("end to end, --fast, 2 threads (s)", f_s, "<= 5", None if f_s is None else f_s <= 5),
        _target("peak RSS, 2 threads (MB)", rss, "<= 2500", None if rss is None else rss <= 2500),
        _target("speed-up vs 1.5 mm pass (x)", s15, ">= 20", None if s15 is None else s15 >= 20),
        _target("speed-up vs 0.77 mm pass (x)", s77, ">= 150", None if s77 is None else s77 >= 150),
        _target("speed-up vs 3 mm pass (x)", s3, "> 1", None if s3 is None else s3 > 1),
    ]
    return {"ours_normal_s": n_s, "ours_fast_s": f_s, "peak_rss_2threads_mb": rss, "ratios": ratios, "targets": targets,
            "comparable": not report["quick"] and not report["other_load_at_start"] and report["models"]["shipped"]}


def _f(x, fmt: str = ".2f") -> str:
    return "–" if x is None else format(x, fmt)


def table(head: list[str], rows: list[list]) -> list[str]:
    """A markdown table."""
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(map(str, r)) + " |" for r in rows]


def header(report: dict) -> list[str]:
    """Title, command, machine, models, input CT, and whether the numbers are comparable."""
    m, mo, ct = report["machine"], report["models"], report["ct"]
    v = m["versions"]
    lines = [f"# Inference benchmark{' (QUICK smoke run: not comparable)' if report['quick'] else ''}", "",
             f"`{report['command']}` — started {report['started_utc']}, took {report['total_benchmark_s']:.0f} s", "",
             f"- Machine: {m['cpu']}, {m['logical_cores']} logical / {m['physical_cores']} physical cores, {m['ram_gb']} GB RAM; "
             f"{m['os']}; Python {m['python']}",
             f"- Versions: livertumorseg {v['livertumorseg']}, onnxruntime {v['onnxruntime']}, torch {v['torch']}, numpy {v['numpy']}, "
             f"SimpleITK {v['SimpleITK']}, dynamic-network-architectures {v['dynamic-network-architectures']}",
             f"- Other load at start: {report['other_load_at_start'] or 'none (idle)'}; at end: {report['other_load_at_end'] or 'none (idle)'}"]
    for stage in ("liver", "tumor"):
        s = mo[stage]
        lines.append(f"- {stage} model: `{s['name']}` v{s['version']} sha256 {s['sha256']}…, {s['spacing_xyz_mm']} mm, patch {s['patch_zyx']}, "
                     f"{s['onnx_mb']} MB, file time {s['onnx_mtime_utc']} ({'shipped models' if mo['shipped'] else 'NOT the shipped models: ' + mo['folder']})")
    lines.append(f"- Input: `{ct['file'].split('/benchmarks/')[-1]}` {' x '.join(map(str, ct['size_xyz']))} voxels at "
                 f"{' x '.join(map(str, ct['spacing_xyz_mm']))} mm ({ct['voxels'] / 1e6:.1f} M voxels, int16, .nii.gz)")
    return lines + [""]


def ours_section(report: dict) -> list[str]:
    """Per-stage times of each configuration of our pipeline (first run in a fresh process)."""
    rows = []
    for r in report.get("ours", []):
        st = r["runs"][0]["stages_s"]
        patches = r["runs"][0]["patches"]
        rows.append([r["backend"], r["threads"], "fast" if r["fast"] else "normal", _f(r["import_s"]), *[_f(st.get(k)) for k, _ in STAGES],
                     f"**{_f(r['cold_s'])}**", _f(r["warm_s"]), f"{r['peak_rss_mb']:.0f}", f"{patches.get('liver', 0)}/{patches.get('tumor', 0)}"])
    head = ["backend", "threads", "mode", "(imports)", *[h for _, h in STAGES], "end to end (cold)", "end to end (warm)", "peak RSS MB", "patches liver/tumor"]
    notes = ["", "Seconds. *(imports)* = importing the library and ONNX Runtime in a fresh interpreter, not part of end to end. *cold* = first case in a fresh process (sessions created: `load models`); *warm* = best later case "
             "in the same process (sessions reused, as in Slicer or a batch). `read` is the file read as `predict` does it; "
             "`check` the input checks; `write` the label map + lesion table. `threads` is the library's option (ONNX Runtime "
             "or PyTorch intra-op threads); SimpleITK resampling uses its own default thread count in every row."]
    first = next(iter(report.get("ours", [])), None)
    if first:
        notes.append("Cascade log (first row): " + "; ".join(f"`{m}`" for m in first["cascade_log"]) + ".")
    checks = [c for r in report.get("ours", []) for c in r.get("backend_checks", [])]
    if checks:
        notes.append(f"PyTorch backend = Training's UNet3D with the ONNX file's weights; parity vs ONNX Runtime: "
                     + ", ".join(f"{c['stage']} max |Δlogit| {c['max_abs_logit_diff_vs_onnxruntime']:.1e}" for c in checks[:2]) + ".")
    return ["## Our cascade, per stage", ""] + table(head, rows) + notes + [""]


def peers_section(report: dict) -> list[str]:
    """The peer passes and our speed-up over each."""
    ratios = {(r["peer"], r["runtime"]): r for r in report["summary"]["ratios"]}
    rows = []
    for p in report.get("peers", []):
        ra = ratios[(p["name"], p["runtime"])]
        how = "full pass" if p["full_pass"] else f"~ estimated: {p['windows_run']} of {p['windows']} windows timed × {p['windows']}"
        rows.append([p["name"], p["runtime"], "×".join(map(str, p["grid_zyx"])), p["windows"], _f(p["mean_window_s"]),
                     f"{'~' if p['estimated'] else ''}{p['pass_s']:.1f}", how, f"{p['peak_rss_mb']:.0f}",
                     f"**{_f(ra['speedup_normal'], '.1f')}×**", f"{_f(ra['speedup_fast'], '.1f')}×"])
    head = ["peer pass", "runtime", "grid (z, y, x)", "windows", "s / window", "pass s", "how", "peak RSS MB",
            "ours normal is … faster", "ours --fast is … faster"]
    notes = ["", f"Peer = nnU-Net v2 3d_fullres PlainConvUNet (6 stages, 32→320 features, 128³ patch, 3 classes, random weights), "
             "sliding window with 50 % overlap and Gaussian blending as nnU-Net does it, over the same CT resampled to each spacing, "
             "2 threads. Pass time = resampling + windows + blending/argmax; no test-time mirroring and no export resampling, so it "
             "is a lower bound of the real tool's time. One warm-up window per process is run first and not counted. Speed-up = "
             "peer pass time / our cold end-to-end time (ONNX Runtime, 2 threads). The pass/fail below uses the ONNX Runtime "
             "peer rows (faster than PyTorch here, so the ratios are the conservative ones)."]
    return ["## Side by side: the nnU-Net / TotalSegmentator approach", ""] + table(head, rows) + notes + [""]


def targets_section(report: dict) -> list[str]:
    """Pass/fail against the issue's targets."""
    s = report["summary"]
    rows = [[t["target"], _f(t["measured"], ".1f"), t["goal"], f"**{t['result']}**"] for t in s["targets"]]
    note = [] if s["comparable"] else ["", "**These numbers are not the final ones**: quick run, other load on the machine, "
                                        "or not the shipped models (see the header)."]
    return ["## Targets (issue 6)", ""] + table(["target", "measured", "goal", "result"], rows) + note + [""]


def scaling_section(report: dict) -> list[str]:
    """Time and memory for four volume sizes."""
    sc = report.get("scaling")
    if not sc:
        return []
    rows = [[f"{r['scale']:g}×", " x ".join(map(str, r["size_xyz"])), " x ".join(map(str, r["spacing_xyz_mm"])), f"{r['voxels'] / 1e6:.1f}",
             _f(r["end_to_end_s"]), f"{r['peak_rss_mb']:.0f}", f"{r['peak_rss_mb'] / (r['voxels'] / 1e6):.1f}",
             f"{r['patches'].get('liver', 0)}/{r['patches'].get('tumor', 0)}"] for r in sc["rows"]]
    head = ["size", "voxels x y z", "spacing mm", "M voxels", "end to end s", "peak RSS MB", "MB per M voxels", "patches liver/tumor"]
    return (["## Scaling with volume size", "", "Same anatomy (the shared whole-body CT) at finer or coarser spacing; ONNX Runtime, "
             "2 threads, normal mode, first case in a fresh process.", ""] + table(head, rows) + ["", "![scaling](scaling.png)", ""])


def batch_section(report: dict) -> list[str]:
    """Cases per minute of the CLI over a folder."""
    rows = [["--fast" if b["fast"] else "normal", b["cases"], _f(b["process_wall_s"], ".1f"), f"**{b['cases_per_minute']:.1f}**",
             f"{b['peak_rss_mb']:.0f}"] for b in report.get("batch", [])]
    if not rows:
        return []
    return (["## Batch throughput", "", "`livertumorseg predict <folder> -o <out> --threads 2` over a folder of the clinical-size CT "
             "(linked under different names); wall time of the whole command: interpreter start, imports, one session per model "
             "for the batch, every case read, segmented and written.", ""]
            + table(["mode", "cases", "wall s", "cases / minute", "peak RSS MB"], rows) + [""])


def markdown(report: dict) -> str:
    """The whole report."""
    parts = header(report) + targets_section(report) + ours_section(report)
    if report.get("peers"):
        parts += peers_section(report)
    parts += scaling_section(report) + batch_section(report)
    return "\n".join(parts) + "\n"
