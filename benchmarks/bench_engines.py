"""ONNX Runtime vs OpenVINO (float32) on the shipped networks, interleaved in one process, real CT input.

    python benchmarks/bench_engines.py [--threads 2] [--repeats 2]

One liver window (162 x 162 x 189, normalised clinical-size CT at 3 mm) and one lesion tile of the shipped tiling
(86 x 172 x 180) per engine and repeat; the engines alternate so that machine load hits both alike. Prints seconds,
the ratio and the largest logit difference; asserts nothing. The whole pipeline: bench_default_set.py.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import clinical_ct  # noqa: E402


def blocks() -> dict[str, np.ndarray]:
    """A normalised liver window and lesion tile (N, 1, z, y, x) cut from the clinical-size CT."""
    import SimpleITK as sitk

    from LiverTumorSegLib.preprocess import canonical
    from LiverTumorSegLib.resample import resample_ct

    ct = canonical(sitk.ReadImage(str(clinical_ct())))
    out = {}
    for stage, spacing, size in (("liver", (3.0, 3.0, 3.0), (162, 162, 189)), ("tumor", (1.0, 1.0, 3.0), (86, 172, 180))):
        a = np.clip(sitk.GetArrayFromImage(resample_ct(ct, spacing)) / 400.0, -0.5, 0.5).astype(np.float32)
        block = np.zeros(size, np.float32)
        c = [max(0, (n - s) // 2) for n, s in zip(a.shape, size)]
        src = a[c[0]:c[0] + size[0], c[1]:c[1] + size[1], c[2]:c[2] + size[2]]
        block[:src.shape[0], :src.shape[1], :src.shape[2]] = src
        out[stage] = block[None, None]
    return out


def main(argv: list[str] | None = None) -> int:
    """Time both engines on both networks."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    from LiverTumorSegLib.config import DEFAULT_MODELS_DIR, RuntimeConfig
    from LiverTumorSegLib.runtime import load_model_file

    for stage, x in blocks().items():
        path = DEFAULT_MODELS_DIR / "pyliverlesionseg" / f"{stage}.json"
        models = {e: load_model_file(path, RuntimeConfig("cpu", args.threads, e)) for e in ("onnxruntime", "openvino")}
        for rep in range(args.repeats):
            t, y = {}, {}
            for engine, model in models.items():
                t0 = time.perf_counter()
                y[engine] = model.run(x)
                t[engine] = time.perf_counter() - t0
            print(f"{stage} {tuple(x.shape[2:])} run {rep + 1}: onnxruntime {t['onnxruntime']:.2f} s, openvino "
                  f"{t['openvino']:.2f} s, ratio {t['onnxruntime'] / t['openvino']:.2f}, max |logit diff| "
                  f"{np.abs(y['onnxruntime'] - y['openvino']).max():.3g}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
