"""Random-weight models with the shipped architecture, for developing the benchmarks before training ends.

`python benchmarks/make_dev_models.py [--out benchmarks/cache/devmodels]`

The network (Training/network.py), patch size, spacing and normalisation come from
Training/configs/{liver,tumor}.yaml, so the cost per patch equals that of trained models with the
same configs. Random weights find no real liver (stage 1 marks almost everything, so stage 2 runs
over the whole CT): pass `--liver-checkpoint Training/runs/<run>/last.pt` to export a partly trained
liver model instead, so that the stage-2 ROI is realistic. Numbers taken with these models are
labelled with the models' names in the results; they are not the shipped models' numbers.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from LiverTumorSegLib.manifest import write_manifest  # noqa: E402
from Training.config import load_config  # noqa: E402
from Training.export import export_onnx  # noqa: E402
from Training.network import build_network  # noqa: E402
from Training.stage import stage_manifest  # noqa: E402


def make_model(stage: str, out: Path, seed: int = 0) -> Path:
    """Export a random-weight `stage` model (liver | tumor) with its manifest into `out`."""
    cfg = load_config(REPO / "Training" / "configs" / f"{stage}.yaml")
    torch.manual_seed(seed)
    net = build_network(cfg.network, len(cfg.stage.classes)).eval()
    with torch.no_grad():  # bias the head towards the first foreground class so stage 1 finds a "liver"
        net.head.bias[1] += 2.0
    onnx_path = export_onnx(net, tuple(cfg.stage.patch_size), out / f"{stage}.onnx")
    manifest = stage_manifest(cfg.stage, name=f"dev-random-{stage}", version="0.0.0-dev")
    manifest.training_data = "none: random weights (benchmarks/make_dev_models.py)"
    return write_manifest(manifest, onnx_path)


def export_checkpoint(checkpoint: Path, out: Path) -> Path:
    """Export a (possibly unfinished) Training checkpoint with its manifest into `out`."""
    from Training.export import model_from_checkpoint

    net, cfg = model_from_checkpoint(checkpoint)
    onnx_path = export_onnx(net, tuple(cfg.stage.patch_size), out / f"{cfg.stage.stage}.onnx")
    manifest = stage_manifest(cfg.stage, name=f"dev-checkpoint-{cfg.stage.stage}", version="0.0.0-dev")
    manifest.training_data = f"unfinished checkpoint {checkpoint} (benchmarks/make_dev_models.py)"
    return write_manifest(manifest, onnx_path)


def main(argv: list[str] | None = None) -> int:
    """Write liver and tumor dev models."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "cache" / "devmodels")
    p.add_argument("--liver-checkpoint", type=Path, help="export this liver checkpoint instead of random weights")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    if args.liver_checkpoint:
        print(f"wrote {export_checkpoint(args.liver_checkpoint, args.out)}")
    for stage in ("tumor",) if args.liver_checkpoint else ("liver", "tumor"):
        print(f"wrote {make_model(stage, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
