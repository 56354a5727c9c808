"""Export a checkpoint to ONNX + manifest, check ONNX Runtime against PyTorch on real data, install.

`python -m Training.export --checkpoint Training/runs/liver/best.pt --out-dir Training/export [--install]`
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import SimpleITK as sitk
import torch

from LiverTumorSegLib.config import DEFAULT_MODELS_DIR
from LiverTumorSegLib.manifest import ModelManifest, write_manifest

from .checkpoint import load_checkpoint
from .config import Config, from_dict
from .data.adapters import list_cases
from .data.cache import preprocess_case
from .data.sampler import crop_padded
from .network import UNet3D, build_network
from .stage import stage_manifest

OPSET = 17
# Bounds on ONNX Runtime vs PyTorch on real CT. Against a float64 PyTorch reference, float32 PyTorch is
# within 3e-6 and ONNX Runtime 1.31 (CPU) within ~1e-2 on 64x128x128 liver patches whose logits reach
# about 4 (its float32 conv arithmetic; measured, see README). So the max |logit difference| is bounded
# relative to the largest |logit| (1%), and softmax probabilities absolutely (2e-2).
PARITY_TOLERANCE = 1e-2
PROBABILITY_TOLERANCE = 2e-2


def model_from_checkpoint(path: Path) -> tuple[UNet3D, Config]:
    """The network of a training checkpoint (eval mode) and its config."""
    ckpt = load_checkpoint(path)
    cfg = from_dict(Config, ckpt["config"])
    model = build_network(cfg.network, len(cfg.stage.classes))
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg


def export_onnx(model: UNet3D, patch_zyx: tuple[int, int, int], path: Path) -> Path:
    """Write ONNX (input `image` (N,1,z,y,x), output `logits` (N,C,z,y,x), dynamic batch and spatial axes)."""
    axes = {0: "N", 2: "z", 3: "y", 4: "x"}
    dummy = torch.zeros((1, 1, *patch_zyx), dtype=torch.float32)
    torch.onnx.export(model, (dummy,), str(path), input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": axes, "logits": axes}, opset_version=OPSET, dynamo=False)
    onnx.checker.check_model(onnx.load(str(path)))
    return path


def parity_inputs(cfg: Config, multiple: int) -> list[np.ndarray]:
    """Real normalised CT blocks (1, 1, z, y, x): one at the manifest patch size, one smaller odd-shaped one."""
    norm = cfg.stage.normalization()
    for case in list_cases(cfg.data.sources):
        out = preprocess_case(case, cfg.stage)
        if out is None:
            continue
        hu = sitk.GetArrayFromImage(out[0])
        centre = np.array(hu.shape) // 2
        small = tuple(max(multiple, (p // 2) // multiple * multiple) + multiple for p in cfg.stage.patch_size)
        return [norm(crop_padded(hu, centre, tuple(size), -1024.0))[None, None] for size in (cfg.stage.patch_size, small)]
    raise ValueError("no case with a liver in the config's data sources for the parity check")


def parity(model: UNet3D, onnx_path: Path, inputs: list[np.ndarray]) -> dict[str, float]:
    """Max |ONNX Runtime - PyTorch| of logits and of softmax probabilities, and the argmax disagreement fraction."""
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logit, scale, prob, flips, total = 0.0, 0.0, 0.0, 0, 0
    with torch.no_grad():
        for x in inputs:
            ref = model(torch.from_numpy(x))
            got = torch.from_numpy(sess.run(["logits"], {"image": x})[0])
            logit = max(logit, float((ref - got).abs().max()))
            scale = max(scale, float(ref.abs().max()))
            prob = max(prob, float((ref.softmax(1) - got.softmax(1)).abs().max()))
            flips += int((ref.argmax(1) != got.argmax(1)).sum())
            total += ref[:, 0].numel()
    return {"max_abs_logit_diff": float(f"{logit:.3g}"), "max_abs_logit": float(f"{scale:.3g}"),
            "relative_logit_diff": float(f"{logit / max(scale, 1e-6):.3g}"), "max_abs_probability_diff": float(f"{prob:.3g}"),
            "argmax_disagreement_fraction": float(f"{flips / total:.3g}")}


def build_manifest(cfg: Config, args: argparse.Namespace) -> ModelManifest:
    """Manifest for the exported model, with provenance and the measured metrics given on the command line."""
    m = stage_manifest(cfg.stage, name=args.name or f"livertumorseg-{cfg.stage.stage}", version=args.version)
    m.training_data = args.training_data or ", ".join(s.kind + ":" + ",".join(s.cases or ["all"]) for s in cfg.data.sources)
    m.training_command = args.training_command
    m.metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else {}
    m.created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return m


def install(onnx_path: Path, manifest: ModelManifest, models_dir: Path) -> Path:
    """Copy the ONNX file into `models_dir` as `<stage>.onnx` and write `<stage>.json` beside it."""
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / f"{manifest.stage}.onnx"
    shutil.copyfile(onnx_path, target)
    return write_manifest(manifest, target)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="best.pt or last.pt of a training run")
    p.add_argument("--out-dir", default="Training/export", help="where <stage>.onnx and <stage>.json are written")
    p.add_argument("--metrics", help="JSON file of measured metrics to record in the manifest")
    p.add_argument("--name", default="")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--training-data", default="", help="description of the training data (default: from the config)")
    p.add_argument("--training-command", default="", help="the command that trained the checkpoint")
    p.add_argument("--tolerance", type=float, default=PARITY_TOLERANCE, help="max accepted ONNX/PyTorch logit difference, relative to the largest logit")
    p.add_argument("--install", action="store_true", help=f"also install into {DEFAULT_MODELS_DIR}")
    p.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR), help="install target folder")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Export, check parity, write manifest, optionally install; exit 1 if parity fails."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model, cfg = model_from_checkpoint(Path(args.checkpoint))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(model, tuple(cfg.stage.patch_size), out_dir / f"{cfg.stage.stage}.onnx")
    par = parity(model, onnx_path, parity_inputs(cfg, model.multiple))
    print(f"ONNX Runtime vs PyTorch on real data: {par} (bounds: relative logit difference {args.tolerance:.0e}, "
          f"probabilities {PROBABILITY_TOLERANCE:.0e})")
    if not (par["relative_logit_diff"] <= args.tolerance and par["max_abs_probability_diff"] <= PROBABILITY_TOLERANCE):
        print("parity check FAILED: not writing a manifest", file=sys.stderr)
        return 1
    manifest = build_manifest(cfg, args)
    manifest.metrics["export_parity"] = {"note": "ONNX Runtime vs PyTorch on real CT blocks of the training data", **par}
    print(f"wrote {write_manifest(manifest, onnx_path)}")
    if args.install:
        print(f"installed {install(onnx_path, manifest, Path(args.models_dir))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
