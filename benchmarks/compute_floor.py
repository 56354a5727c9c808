"""How much arithmetic the default set needs on one CT, and what that means for its time on this CPU.

Counts the multiply-adds of every convolution of each network at the window shape it runs at (OpenVINO's shape
inference on the ONNX file; 2 FLOP per multiply-add), and the windows each stage runs on a CT given its label map:
the liver window(s) over the body, the lesion windows of pyliverlesionseg's grid over the dilated liver. Used by
`bench_default_set.py`; also runs alone:

    python benchmarks/compute_floor.py CT.nii.gz LABELS.nii.gz
"""
from __future__ import annotations

import json
import sys
from itertools import product
from pathlib import Path

import numpy as np


def conv_gflop(onnx_path: Path, input_zyx: tuple[int, int, int]) -> float:
    """GFLOP (2 per multiply-add) of the convolutions of an ONNX network for one (1, 1, z, y, x) input."""
    import openvino as ov

    model = ov.Core().read_model(str(onnx_path))
    model.reshape({model.inputs[0].get_any_name(): [1, 1, *input_zyx]})
    total = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Convolution":
            weights = list(op.input_value(1).get_shape())
            total += 2 * int(np.prod(list(op.get_output_shape(0)))) * int(np.prod(weights[1:]))
    return total / 1e9


def windows(ct_path: Path, labels_path: Path) -> dict:
    """Windows each stage runs on `ct_path` whose liver is `labels_path` > 0: {"liver": (n, patch), "tumor": (n, patch)}."""
    import SimpleITK as sitk

    from LiverTumorSegLib.cascade import body_region
    from LiverTumorSegLib.config import DEFAULT_MODELS_DIR
    from LiverTumorSegLib.manifest import load_manifest
    from LiverTumorSegLib.preprocess import to_model_grid
    from LiverTumorSegLib.roi import Box
    from LiverTumorSegLib.sliding_window import window_starts
    from LiverTumorSegLib.tiling import liver_grid
    from LiverTumorSegLib.zoom_stage import canonical, zoomed_liver

    ct = sitk.ReadImage(str(ct_path))
    liver_m = load_manifest(DEFAULT_MODELS_DIR / "pyliverlesionseg" / "liver.json")
    tumor_m = load_manifest(DEFAULT_MODELS_DIR / "pyliverlesionseg" / "tumor.json")
    grid = sitk.GetArrayViewFromImage(to_model_grid(ct, liver_m))
    region = body_region(grid) if liver_m.window_on_body else None
    inside = grid[region].shape if region else grid.shape
    overlap = liver_m.tile_overlap or 0.0
    patch = liver_m.patch_for(inside, overlap)
    n_liver = len(list(product(*[window_starts(max(s, o), o, overlap) for s, o in
                                 zip(inside, [p - 2 * c for p, c in zip(patch, liver_m.output_crop)])])))
    liver = sitk.GetArrayFromImage(sitk.ReadImage(str(labels_path))) > 0
    _, _, canon, spacing = canonical(ct, Box((0, 0, 0), ct.GetSize()), liver)
    zl = zoomed_liver(canon, spacing, tumor_m)
    n_tumor = 0 if zl is None else len(liver_grid(zl.dilated.shape, tumor_m.output_size))
    return {"liver": (n_liver, tuple(patch)), "tumor": (n_tumor, tuple(tumor_m.patch_size))}


def cpu_peak_gflops(cores: int) -> tuple[float | None, str]:
    """Nominal float32 peak of `cores` cores (clock from /proc/cpuinfo x FLOP per cycle from the vector flags, 2 FMA
    units assumed), and how it was worked out; None where that cannot be read."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, "no /proc/cpuinfo"
    mhz = [float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")]
    flags = next((line.split(":")[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= set(flags) else 16
    if not mhz:
        return None, "no clock in /proc/cpuinfo"
    ghz = max(mhz) / 1000
    return cores * per_cycle * ghz, f"{cores} cores x {per_cycle} FLOP/cycle x {ghz:.2f} GHz (nominal clock, 2 FMA units)"


def floor(ct_path: Path, labels_path: Path, network_s: float | None = None, cores: int = 2) -> dict:
    """Arithmetic of both stages on this CT, and (given the seconds both stages took) the throughput it implies."""
    from LiverTumorSegLib.config import DEFAULT_MODELS_DIR

    folder = DEFAULT_MODELS_DIR / "pyliverlesionseg"
    win = windows(ct_path, labels_path)
    per = {stage: conv_gflop(folder / f"{stage}.onnx", patch) for stage, (_, patch) in win.items()}
    total = sum(per[s] * n for s, (n, _) in win.items())
    peak, how = cpu_peak_gflops(cores)
    out = {"windows": {s: n for s, (n, _) in win.items()}, "window_patch_zyx": {s: p for s, (_, p) in win.items()},
           "gflop_per_window": {s: round(g, 1) for s, g in per.items()}, "total_gflop": round(total, 1),
           "cpu_peak_gflops": round(peak, 1) if peak else None, "cpu_peak_how": how}
    if peak:
        out["seconds_at_cpu_peak"] = round(total / peak, 1)
    if network_s:
        out["stage_seconds"] = round(network_s, 1)
        out["achieved_gflops"] = round(total / network_s, 1)
    return out


if __name__ == "__main__":
    print(json.dumps(floor(Path(sys.argv[1]), Path(sys.argv[2])), indent=2))
