"""Run the ORIGINAL pyliverlesionseg pipeline (the reference tool's `run_peer.py`) and keep its intermediate arrays.

Runs under the reference tool's own Python (TensorFlow + tf_keras; `../shared/tools/pyliverlesionseg-original/`
README), never imported by the project:

    $D/venv/bin/python Training/pretrained/original_pipeline.py IN.nii.gz OUT.nii.gz --tool-dir $D \
        --liver-mask LIVER.nii.gz [--float64-statistics] [--save-npz OUT.npz] [--skip-liver-network]

It executes `run_peer.py` unchanged and wraps two of its functions to save, on the lesion network's grid
(RAS array order, as the package uses it), the masked and cropped network input, the lesion probability and
the crop box. `--float64-statistics` makes the networks' instance normalisations reduce in float64 (the
original's own float32-vs-float64 spread is the yardstick of pipeline parity). `--skip-liver-network` replaces
the liver network by an empty prediction when `--liver-mask` gives the liver (the lesion step then runs exactly as
with the network's liver; only label 2 of the output is meaningful).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from keras_reference import _accurate_statistics  # this script's folder is on sys.path: it runs as a script


def main() -> int:
    """Parse our options, hand the rest to run_peer.py, wrap its predictor and lesion post-processing."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--tool-dir", required=True)
    p.add_argument("--liver-mask", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--float64-statistics", action="store_true")
    p.add_argument("--skip-liver-network", action="store_true")
    p.add_argument("--save-npz", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    tool = Path(args.tool_dir)
    sys.argv = [str(tool / "run_peer.py"), args.input, args.output, "--no-crop", "--liver-mask", args.liver_mask,
                "--threads", str(args.threads)] + (["--json", args.json] if args.json else [])
    sys.path.insert(0, str(tool))
    import tensorflow as tf
    import tf_keras

    if args.float64_statistics:
        _accurate_statistics(tf, tf_keras.backend)
    ns: dict = {"__name__": "original_run_peer", "__file__": str(tool / "run_peer.py")}
    exec(compile((tool / "run_peer.py").read_text(), str(tool / "run_peer.py"), "exec"), ns)
    saved: dict[str, np.ndarray] = {}
    predict, post = ns["tiled_predict"], ns["cnn_lesion_pred_postprocess"]

    if args.skip_liver_network:
        import h5py

        pm = ns["pm"]
        with h5py.File(pm.LIVER_H5, "r") as f:
            liver_spacing = np.array(list(f["header/voxel_size"]))
        pm.get_liver_model = lambda: (None, liver_spacing)

    def tiled_predict(model, image, center_sampling):
        if model is None:
            return np.zeros(image.shape, np.float32), 0
        out, n = predict(model, image, center_sampling)
        if not center_sampling:  # the lesion network
            saved["lesion_input"], saved["lesion_probability"] = image.astype(np.float32), out.astype(np.float32)
        return out, n

    def lesion_post(cnn_pred, img_vol, bbox, shape, Th=0.5, flag_flip=True):
        saved["lesion_bbox"] = np.array([[s.start, s.stop] for s in bbox])
        saved["lesion_grid_shape"] = np.array(shape)
        return post(cnn_pred, img_vol, bbox, shape, Th=Th, flag_flip=flag_flip)

    ns["tiled_predict"], ns["cnn_lesion_pred_postprocess"] = tiled_predict, lesion_post
    ns["main"]()
    if args.save_npz:
        np.savez_compressed(args.save_npz, **saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
