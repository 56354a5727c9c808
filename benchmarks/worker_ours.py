"""One configuration of our pipeline in its own process: read, segment, write, `repeats` times.

Run by bench_inference.py through common.run_isolated; prints one BENCH-RESULT JSON line.
Stage times are the library's own `SegmentationResult.timings`; `read` and `write` are timed here
exactly as `livertumorseg predict` does them. Network time and patch count per stage are measured
by wrapping `Model.run`.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from common import emit, peak_rss_so_far_mb

T_START = time.perf_counter()
import LiverTumorSegLib.runtime as runtime  # noqa: E402
from LiverTumorSegLib.api import segment  # noqa: E402
from LiverTumorSegLib.caseplan import output_paths  # noqa: E402
from LiverTumorSegLib.config import SegmentationConfig  # noqa: E402
from LiverTumorSegLib.io import read_image, write_image, write_table  # noqa: E402

IMPORT_S = time.perf_counter() - T_START
STAGE_ORDER = ["read", "read_and_check", "load_models", "stage1_liver", "roi", "stage2_tumor", "resample_back", "lesions", "write"]


class NetworkMeter:
    """Wraps Model.run: seconds inside the network and patches, per model stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.patches: dict[str, int] = defaultdict(int)
        original = runtime.Model.run

        def run(model, batch):
            t0 = time.perf_counter()
            out = original(model, batch)
            self.seconds[model.manifest.stage] += time.perf_counter() - t0
            self.patches[model.manifest.stage] += 1
            return out

        runtime.Model.run = run

    def take(self) -> dict:
        """Counts since the last call, then reset."""
        out = {"network_s": {k: round(v, 3) for k, v in self.seconds.items()}, "patches": dict(self.patches)}
        self.seconds.clear()
        self.patches.clear()
        return out


class LogCapture(logging.Handler):
    """Keeps the cascade's INFO messages (stage grids, ROI size)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def install_variant(args: argparse.Namespace) -> SegmentationConfig:
    """Apply a speed variant the library does not expose (in this process only); the config to pass."""
    if args.whole_volume:  # one window covering each stage's whole grid (rounded up to the network's multiple)
        import LiverTumorSegLib.cascade as cascade

        original = cascade.predict_probabilities

        def whole(volume, run, patch, **kw):
            return original(volume, run, tuple(-(-s // 8) * 8 for s in volume.shape), **kw)

        cascade.predict_probabilities = whole
    if args.sitk_threads:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.sitk_threads)
    cfg = SegmentationConfig()
    return replace(cfg, window=replace(cfg.window, overlap=args.overlap)) if args.overlap is not None else cfg


def dice_vs(result, reference: Path | None) -> dict:
    """Liver (labels 1+2) and tumor (label 2) Dice against a reference label map on the same grid."""
    if reference is None:
        return {}
    import SimpleITK as sitk

    from LiverTumorSegLib.metrics import dice

    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(reference)))
    return {"dice_liver": round(dice(result.labels > 0, ref > 0), 4), "dice_tumor": round(dice(result.labels == 2, ref == 2), 4)}


def one_run(ct: Path, args: argparse.Namespace, out_dir: Path, meter: NetworkMeter) -> dict:
    """Read, segment and write once; per-stage seconds, end to end, and what was found."""
    t0 = time.perf_counter()
    image = read_image(ct)
    read_s = time.perf_counter() - t0
    # --fast: the project's small test-only U-Nets (Testing/models), the old fast set of the earlier benchmarks.
    models_dir = args.models_dir or (Path(__file__).resolve().parents[1] / "Testing" / "models" if args.fast else None)
    result = segment(image, threads=args.threads, model_set="fast" if args.fast else None, models_dir=models_dir, device="cpu",
                     config=args.config)
    t1 = time.perf_counter()
    paths = output_paths(out_dir, "case", "nifti")
    write_image(result.label_image(), paths["nifti"], overwrite=True)
    write_table([lesion.row() for lesion in result.lesions], paths["lesions"], overwrite=True,
                extra={"case": "case", **result.summary(), "timings_s": result.timings})
    stages = {"read": read_s, **result.timings, "write": time.perf_counter() - t1}
    return {"stages_s": {k: round(stages[k], 3) for k in STAGE_ORDER if k in stages},
            "end_to_end_s": round(time.perf_counter() - t0, 3), **meter.take(),
            "found": {"liver_ml": round(result.liver_volume_ml, 1), "tumor_ml": round(result.tumor_volume_ml, 1),
                      "lesions": len(result.lesions), **dice_vs(result, args.reference)}}


def main(argv: list[str] | None = None) -> int:
    """Run the configuration and print its result line."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ct", type=Path, required=True)
    p.add_argument("--models-dir", type=Path, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fast", action="store_true")
    p.add_argument("--backend", choices=["onnxruntime", "torch"], default="onnxruntime")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--overlap", type=float, default=None, help="variant: sliding-window overlap (library default 0.5)")
    p.add_argument("--whole-volume", action="store_true", help="variant: one window over each stage's whole grid")
    p.add_argument("--sitk-threads", type=int, default=0, help="variant: cap SimpleITK's threads")
    p.add_argument("--reference", type=Path, default=None, help="reference label map on the CT's grid: report Dice")
    args = p.parse_args(argv)
    args.config = install_variant(args)
    checks: list[dict] = []
    if args.backend == "torch":
        import torch_backend

        torch_backend.install(args.threads)
        checks = torch_backend.check_parity(args.models_dir)
    log = LogCapture()
    logging.getLogger("LiverTumorSegLib.cascade").addHandler(log)
    logging.getLogger("LiverTumorSegLib.cascade").setLevel(logging.INFO)
    meter = NetworkMeter()
    rss_import = peak_rss_so_far_mb()
    with tempfile.TemporaryDirectory(prefix="ltsbench-") as tmp:
        runs = [one_run(args.ct, args, Path(tmp), meter) for _ in range(args.repeats)]
    emit({"import_s": round(IMPORT_S, 3), "rss_after_import_mb": rss_import, "runs": runs,
          "backend_checks": checks, "cascade_log": log.messages[:4]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
