"""Student sizing: parameters vs CPU/CUDA forward seconds of the liver U-Net at a few widths.

`python -m Training.student_sizing --widths 4 8 16 --patch 64 128 128 --threads 2 [--device cuda]`
Prints one JSON row per width: parameters, median seconds of `--repeats` forward passes on one
(1, 1, z, y, x) patch (after one warm-up), the machine and thread count. Timings on a shared machine
are noisy: report them with the machine load.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from .config import NetworkConfig
from .network import build_network


def n_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def forward_seconds(model: torch.nn.Module, patch_zyx: tuple[int, int, int], device: torch.device, repeats: int) -> float:
    """Median wall seconds of one forward pass on a random (1, 1, z, y, x) float32 patch (AMP on CUDA)."""
    model.eval().to(device)
    x = torch.randn(1, 1, *patch_zyx, device=device)
    times = []
    for k in range(repeats + 1):
        t0 = time.perf_counter()
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if k:  # the first pass warms up
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def size_row(width: int, depth: int, max_features: int, patch: tuple[int, int, int], device: torch.device, repeats: int) -> dict:
    """One table row for a U-Net of `width` base features."""
    model = build_network(NetworkConfig(width, depth, max_features, residual=False), 2)
    return {"base_features": width, "depth": depth, "max_features": max_features, "parameters": n_parameters(model),
            "patch_zyx": list(patch), "forward_s": round(forward_seconds(model, patch, device, repeats), 3),
            "device": str(device), "threads": torch.get_num_threads(), "machine": platform.node(),
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--max-features", type=int, default=64)
    p.add_argument("--patch", type=int, nargs=3, default=[64, 128, 128])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    for w in a.widths:
        print(json.dumps(size_row(w, a.depth, a.max_features, tuple(a.patch), torch.device(a.device), a.repeats)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
