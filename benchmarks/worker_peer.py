"""The peer in its own process: nnU-Net v2 3d_fullres PlainConvUNet, sliding window over the same CT.

Configuration of nnU-Net v2 3d_fullres for MSD Task03 (liver) and of TotalSegmentator's nets:
`dynamic-network-architectures` PlainConvUNet, 6 stages, features 32-64-128-256-320-320, kernel 3,
strides 1-2-2-2-2-2, 2 convs per stage (encoder and decoder), InstanceNorm + LeakyReLU, conv bias,
no deep supervision at inference, 3 output classes, 128^3 patch, random weights (weights do not
change the cost). Sliding window as nnU-Net's predictor does it: pad to at least the patch,
`compute_steps_for_sliding_window` with step 0.5, Gaussian importance map (sigma 1/8 of the patch,
scaled to 10), half-precision logit accumulation, then division and argmax. No test-time mirroring
(nnU-Net's default mirroring would cost up to 8x more) and no export resampling: the peer time is a
lower bound of the real tool's.

When the window count exceeds `--samples`, only `--samples` real patches spread over the volume
are run and timed, and the pass time is their mean x the exact window count (+ measured
resampling and finalisation); the result says so.
"""
from __future__ import annotations

import argparse
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np

from common import emit


def plain_conv_unet(num_classes: int = 3):
    """nnU-Net v2's 3d_fullres network for a 128^3-patch CT task (MSD Task03 / TotalSegmentator)."""
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    torch.manual_seed(0)
    return PlainConvUNet(
        input_channels=1, n_stages=6, features_per_stage=[32, 64, 128, 256, 320, 320], conv_op=torch.nn.Conv3d,
        kernel_sizes=[[3, 3, 3]] * 6, strides=[[1, 1, 1]] + [[2, 2, 2]] * 5, n_conv_per_stage=[2] * 6,
        num_classes=num_classes, n_conv_per_stage_decoder=[2] * 5, conv_bias=True, norm_op=torch.nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True},
        deep_supervision=False,
    ).eval()


def onnx_forward(net, patch: int, threads: int):
    """The same network under ONNX Runtime (exported once to benchmarks/cache), as a tensor -> tensor callable."""
    import onnxruntime as ort
    import torch

    from common import CACHE

    path = CACHE / f"peer_plainconvunet_{patch}.onnx"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        torch.onnx.export(net, torch.zeros(1, 1, patch, patch, patch), str(path), input_names=["image"],
                          output_names=["logits"], opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(sess.run(["logits"], {"image": x.numpy()})[0])


def steps(image: tuple[int, ...], tile: tuple[int, ...], step: float = 0.5) -> list[list[int]]:
    """Window starts per axis, as nnU-Net's compute_steps_for_sliding_window."""
    out = []
    for i, k in zip(image, tile):
        n = int(np.ceil((i - k) / (k * step))) + 1
        actual = (i - k) / (n - 1) if n > 1 else 0
        out.append([int(np.round(actual * j)) for j in range(n)])
    return out


def gaussian(tile: tuple[int, ...], sigma_scale: float = 1.0 / 8, value_scaling: float = 10.0):
    """nnU-Net's Gaussian importance map (float16 torch tensor)."""
    import torch
    from scipy.ndimage import gaussian_filter

    tmp = np.zeros(tile)
    tmp[tuple(i // 2 for i in tile)] = 1
    g = gaussian_filter(tmp, [i * sigma_scale for i in tile], 0, mode="constant", cval=0)
    g = torch.from_numpy(g / g.max() * value_scaling).half()
    g[g == 0] = torch.min(g[g != 0])
    return g


def prepare(ct: Path, spacing: tuple[float, float, float], patch: int):
    """CT resampled to `spacing` (SimpleITK linear), CT-normalised, padded to the patch: (1, z, y, x) tensor."""
    import SimpleITK as sitk
    import torch

    from LiverTumorSegLib.resample import resample_ct

    arr = sitk.GetArrayFromImage(resample_ct(sitk.ReadImage(str(ct)), spacing))
    lo, hi = np.percentile(arr[::4, ::4, ::4], [0.5, 99.5])
    arr = (np.clip(arr, lo, hi) - arr.mean()) / max(float(arr.std()), 1e-6)
    pads = [(0, max(0, patch - s)) for s in arr.shape]
    return torch.from_numpy(np.pad(arr, pads).astype(np.float32))[None]


def pick(n_total: int, k: int) -> list[int]:
    """`k` window indices spread evenly over `n_total` (all of them when k >= n_total)."""
    return list(range(n_total)) if k >= n_total else sorted({int(round(i)) for i in np.linspace(0, n_total - 1, k)})


def sliding_window(net, data, patch: int, samples: int, classes: int) -> dict:
    """Run (a sample of) the windows with nnU-Net's blending; per-window seconds and the finalisation time."""
    import torch

    tile = (patch,) * 3
    windows = list(product(*steps(tuple(data.shape[1:]), tile)))
    chosen = pick(len(windows), samples)
    g = gaussian(tile)
    logits = torch.zeros((classes, *data.shape[1:]), dtype=torch.half)
    n_pred = torch.zeros(data.shape[1:], dtype=torch.half)
    with torch.inference_mode():
        t = time.perf_counter()
        net(data[None, :, :patch, :patch, :patch])  # warm-up, not counted
        warmup = time.perf_counter() - t
        per_window = []
        for idx in chosen:
            z, y, x = windows[idx]
            sl = (slice(z, z + patch), slice(y, y + patch), slice(x, x + patch))
            t = time.perf_counter()
            pred = net(data[(slice(None), *sl)][None])[0]
            logits[(slice(None), *sl)] += pred * g
            n_pred[sl] += g
            per_window.append(time.perf_counter() - t)
        t = time.perf_counter()
        seg = (logits / n_pred).argmax(0)
        finalize = time.perf_counter() - t
    return {"windows": len(windows), "windows_run": len(chosen), "warmup_window_s": round(warmup, 3),
            "window_s": [round(s, 3) for s in per_window], "finalize_s": round(finalize, 3), "labels_shape": list(seg.shape)}


def main(argv: list[str] | None = None) -> int:
    """Prepare the CT, run the windows, print the (estimated) pass time."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ct", type=Path, required=True)
    p.add_argument("--spacing", type=float, nargs=3, required=True, metavar=("X", "Y", "Z"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--samples", type=int, default=3, help="run every window when there are at most this many")
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--runtime", choices=["torch", "onnxruntime"], default="torch")
    p.add_argument("--export-only", action="store_true", help="only write the cached ONNX file (its own process)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.export_only:
        onnx_forward(plain_conv_unet(), args.patch, args.threads)
        emit({"exported": True})
        return 0
    t = time.perf_counter()
    data = prepare(args.ct, tuple(args.spacing), args.patch)
    prep = time.perf_counter() - t
    net = plain_conv_unet()
    if args.runtime == "onnxruntime":
        net = onnx_forward(net, args.patch, args.threads)
    sw = sliding_window(net, data, args.patch, args.samples, 3)
    mean = float(np.mean(sw["window_s"]))
    full = sw["windows_run"] == sw["windows"]
    total = prep + (sum(sw["window_s"]) if full else mean * sw["windows"]) + sw["finalize_s"]
    emit({"spacing_xyz_mm": args.spacing, "grid_zyx": list(data.shape[1:]), "patch": args.patch, "threads": args.threads,
          "runtime": args.runtime,
          "prepare_s": round(prep, 3), **sw, "mean_window_s": round(mean, 3), "full_pass": full,
          "pass_s": round(total, 2), "estimated": not full})
    return 0


if __name__ == "__main__":
    sys.exit(main())
