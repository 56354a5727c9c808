"""Import a published pretrained network pair as a LiverTumorSeg model set (ONNX + manifests + credit).

    python -m Training.import_pretrained pyliverlesionseg [--out LiverTumorSegLib/models/pyliverlesionseg]
        [--cache Training/.cache/pretrained] [--parity Training/runs/pls_parity/parity.json]

Downloads the pyliverlesionseg 0.3 wheel with pip, reads its Keras HDF5 weights with h5py, rebuilds both
networks in PyTorch (`Training/pretrained/deepvoxnet_unet.py`), exports them to ONNX (dynamic batch and
spatial axes, canonical LPS (z, y, x) input) and writes `liver.json` / `tumor.json` manifests that tell
the engine everything the networks need. `--parity` records the measured ONNX-vs-Keras differences.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import onnx
import torch

from LiverTumorSegLib.manifest import ModelManifest, write_manifest
from LiverTumorSegLib.windowing import RangeNormalization

from .pretrained import pyliverlesionseg as pls
from .pretrained.parity import NORMALIZATION, stage_of

OPSET = 17
# Engine tiling of the lesion network (z, y, x input voxels at 1 x 1 x 3 mm). The original tiles 86 x 172 x 180
# inputs into 42 x 84 x 92 outputs; fewer, larger tiles waste less of the compute on the 22/44/44-voxel borders.
LESION_PATCH_ZYX = (86, 172, 180)
# The network is fully convolutional (valid padding): any input of 8k+6 (z) x 8k+4 (y, x) voxels works, so the
# engine sizes one patch to the whole liver ROI up to this many input voxels (measured: 5.3 M voxels peak at
# 2.5 GB RSS in ONNX Runtime without arena; the original's 86 x 172 x 180 tile is 2.7 M voxels).
# The liver network takes the urinary bladder of a pelvis-only CT for a liver (447 ml, mean probability 0.91, 54 % on
# the patient's right); the livers of the shared CTs lie 79-95 % on the patient's right of the body midline.
MIN_RIGHT_FRACTION = 0.65
# The liver network ("same" padding, three poolings by 3) would accept any input of 27k voxels per axis, but its
# instance normalisations see the padding: a window sized to the CT (162 x 135 x 162 instead of 162 x 162 x 189 on
# the clinical-size benchmark CT, 1.3x faster) shrank the livers (chaos_ct3 Dice 0.972 -> 0.936, HD95 2.1 -> 5.1 mm;
# totalseg_ct -7 % volume). So the liver keeps the original's fixed window.
# MR input of the liver network: the original's MR normalisation (the lowest 80 % of the image's intensity range onto
# [-0.5, 0.5], RangeNormalization's defaults), cut at 0.3 instead of 0.5: on CHAOS T2-SPIR the livers came out ~15 %
# too small at 0.5 (tuned on patients p01-p05, held-out results in Training/results/mr/results.md). The lesion network
# takes CT only: it was never checked on MR here (no MR with lesion labels).
LIVER_MR_INPUT = {"normalization": RangeNormalization().to_dict(), "liver_threshold": 0.3}


def export(net: torch.nn.Module, input_zyx: tuple[int, int, int], path: Path) -> Path:
    """ONNX file of `net` wrapped to take LPS (N, 1, z, y, x) input; input `image`, output `logits`."""
    model = pls.LPSInput(net).eval()
    axes = {0: "N", 2: "z", 3: "y", 4: "x"}
    dummy = torch.zeros((1, 1, *input_zyx), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic (it is shape-generic; tested)
        torch.onnx.export(model, (dummy,), str(path), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": axes}, opset_version=OPSET, dynamo=False)
    onnx.checker.check_model(onnx.load(str(path)))
    return path


def liver_manifest(credit: dict, voxel: tuple[float, ...]) -> ModelManifest:
    """Manifest of the liver network: 3 mm, one 162 x 162 x 189 window → its centred 136 x 136 x 163 output."""
    return ModelManifest(
        name="pyliverlesionseg-liver", stage="liver", version=pls.VERSION, onnx_file="liver.onnx", sha256="",
        classes={0: "background", 1: "liver"}, spacing=tuple(voxel), patch_size=(162, 162, 189),
        normalization=NORMALIZATION, roi_margin_mm=6.0, output_activation="sigmoid", output_crop=(13, 13, 13),
        pad_value=0.0, tile_overlap=0.25, median_prefilter={"spacing": [1.5, 1.5, 1.5], "size": 3},
        liver_opening_voxels=1, credit=credit, min_right_fraction=MIN_RIGHT_FRACTION, window_on_body=True,
        modalities={"ct": {}, "mr": LIVER_MR_INPUT},
        training_data="pyliverlesionseg 0.3 training data (Tang et al. 2020: CT and MR of SIRT patients, KU Leuven); not retrained here",
        training_command="python -m Training.import_pretrained pyliverlesionseg",
    )


def lesion_manifest(credit: dict, voxel: tuple[float, ...]) -> ModelManifest:
    """Manifest of the lesion network: 1 x 1 x 3 mm, valid convolutions, CT masked outside the dilated liver."""
    return ModelManifest(
        name="pyliverlesionseg-lesion", stage="tumor", version=pls.VERSION, onnx_file="tumor.onnx", sha256="",
        classes={0: "background", 1: "tumor"}, spacing=tuple(voxel), patch_size=LESION_PATCH_ZYX,
        # The original's own lesion stage: its zoom3d resampling, its tiling (fixed 86 x 172 x 180 windows on its grid
        # over the dilated liver's box, zeros beyond it) and its threshold-then-zoom back. The lesion network's instance
        # norms make its output depend on all three (Training/results/pipeline_parity.md: the earlier flexible large
        # patches called 62 % less on a large lesion). The ROI margin covers the dilation (2 voxels: 6 mm in z) and
        # the zoom back (up to one 3 mm voxel).
        normalization=NORMALIZATION, roi_margin_mm=10.0, output_activation="sigmoid", output_crop=(22, 44, 44),
        pad_value=0.0, tile_overlap=0.0, liver_mask={"dilation_voxels": 2, "fill_value": -0.5}, credit=credit,
        output_resampling="binary_any", resampling="zoom3d", tile_placement="liver_grid",
        modalities={"ct": {}},
        training_data="pyliverlesionseg 0.3 training data (Tang et al. 2020; lesion network of 2022-02-07); not retrained here",
        training_command="python -m Training.import_pretrained pyliverlesionseg",
    )


def record_parity(manifest: ModelManifest, parity: dict) -> None:
    """Copy the measured port-vs-original figures of this stage's blocks into the manifest."""
    blocks = {k: v for k, v in parity.items() if stage_of(k) == manifest.stage}
    if not blocks:
        return

    def worst(kind: str, field: str) -> float:
        return max(v[kind][field] for v in blocks.values() if v[kind] is not None)

    manifest.metrics["parity_with_original"] = {
        "port_float64_max_abs_probability_diff": worst("port_float64_vs_original_float64_statistics", "max_abs_probability_diff"),
        "onnx_max_abs_probability_diff": worst("onnx_vs_original_float64_statistics", "max_abs_probability_diff"),
        "onnx_threshold_disagreement_fraction": worst("onnx_vs_original_float64_statistics", "threshold_disagreement_fraction"),
        "onnx_vs_tf_float32_max_abs_probability_diff": worst("onnx_vs_original_tf_float32", "max_abs_probability_diff"),
        "onnx_vs_tf_float32_threshold_disagreement_fraction": worst("onnx_vs_original_tf_float32", "threshold_disagreement_fraction"),
        "original_float32_vs_float64_statistics_max_abs_probability_diff":
            worst("original_tf_float32_vs_float64_statistics", "max_abs_probability_diff"),
        "blocks": blocks,
        "note": "Original = the pyliverlesionseg 0.3 Keras network with its published weights, run by "
                "../shared/tools/pyliverlesionseg-original (tensorflow-cpu + tf_keras), on real CT blocks of ../shared/data "
                "(Training/pretrained/parity.py + keras_reference.py). The port's architecture is exact: in float64 it matches "
                "the original run with float64 mean/std. In float32 (this ONNX file, ONNX Runtime CPU) the instance "
                "normalisations amplify rounding: the original moves as much between TF float32 and float64 statistics. "
                "The *_small_* blocks are re-checked without TensorFlow by Testing/training/test_pretrained_parity.py.",
    }


def import_pyliverlesionseg(out: Path, cache: Path, parity_file: Path | None) -> list[Path]:
    """Write liver/tumor ONNX + manifests of pyliverlesionseg 0.3 into `out`; returns the manifest paths."""
    wheel = pls.download_wheel(cache)
    credit = pls.wheel_provenance(wheel)
    parity = json.loads(parity_file.read_text()) if parity_file else {}
    out.mkdir(parents=True, exist_ok=True)
    (out / "LICENSE").write_bytes(pls.licence_text(wheel))
    written = []
    for network, make in ((pls.LIVER, liver_manifest), (pls.LESION, lesion_manifest)):
        net, voxel = pls.build_network(network, wheel)
        manifest = make(credit, voxel)
        manifest.created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        record_parity(manifest, parity)
        onnx_path = export(net, manifest.patch_size, out / manifest.onnx_file)
        written.append(write_manifest(manifest, onnx_path))
        print(f"wrote {onnx_path} and {written[-1]}")
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("package", choices=["pyliverlesionseg"])
    p.add_argument("--out", type=Path, default=Path("LiverTumorSegLib/models/pyliverlesionseg"))
    p.add_argument("--cache", type=Path, default=Path("Training/.cache/pretrained"))
    p.add_argument("--parity", type=Path, default=None, help="parity.json from Training.pretrained.parity compare")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    import_pyliverlesionseg(args.out, args.cache, args.parity)
    return 0


if __name__ == "__main__":
    sys.exit(main())
