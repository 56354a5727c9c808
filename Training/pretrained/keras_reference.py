"""Run the ORIGINAL pyliverlesionseg Keras networks on saved input blocks (the parity reference).

This script is not imported by the project: it runs under the reference tool's own Python environment
(`../shared/tools/pyliverlesionseg-original/`, TensorFlow + tf_keras; see its README for the set-up) and uses
that tool's `peer_models` to build the original networks, so the port is compared against the published
code, never against itself.

    $D/venv/bin/python Training/pretrained/keras_reference.py BLOCKS.npz OUT.npz --tool-dir $D

BLOCKS.npz holds normalised blocks `<stage>__<name>` (z, y, x) in canonical LPS order; OUT.npz gets the
Keras sigmoid output of each, on the network's centred output grid, in the same order.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def to_keras(block_zyx_lps: np.ndarray) -> np.ndarray:
    """(z, y, x) LPS -> (x, y, z) RAS, the array layout pyliverlesionseg feeds its networks."""
    return np.ascontiguousarray(block_zyx_lps.transpose(2, 1, 0)[::-1, ::-1, :])


def from_keras(block_xyz_ras: np.ndarray) -> np.ndarray:
    """Inverse of `to_keras`."""
    return np.ascontiguousarray(block_xyz_ras[::-1, ::-1, :].transpose(2, 1, 0))


def output_size(stage: str, input_xyz: tuple[int, ...]) -> list[int]:
    """Output size (x, y, z) of the liver ('same', -26) or lesion ('valid', -88/-88/-44) network."""
    if stage == "liver":
        return [s - 26 for s in input_xyz]
    return [input_xyz[0] - 88, input_xyz[1] - 88, input_xyz[2] - 44]


def _accurate_statistics(tf, backend) -> None:
    """Make the original's Lambda instance norm (it calls backend.mean / backend.std at run time) reduce in float64."""
    def mean(x, axis=None, keepdims=False):
        return tf.cast(tf.reduce_mean(tf.cast(x, tf.float64), axis=axis, keepdims=keepdims), x.dtype)

    def std(x, axis=None, keepdims=False):
        return tf.cast(tf.math.reduce_std(tf.cast(x, tf.float64), axis=axis, keepdims=keepdims), x.dtype)

    backend.mean, backend.std = mean, std


def main() -> int:
    """Build each original network at each block's size, load its published weights, predict."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("blocks")
    p.add_argument("out")
    p.add_argument("--tool-dir", required=True, help="folder with peer_models.py and pkg/ (the reference tool set-up)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--float64-statistics", action="store_true",
                   help="compute the instance-normalisation mean/std in float64 (TensorFlow's float32 reductions over "
                        "large tiles are off by ~1e-3 relative, which the normalisations amplify); all else float32")
    args = p.parse_args()
    sys.path.insert(0, args.tool_dir)
    import tensorflow as tf
    import tf_keras

    if args.float64_statistics:
        _accurate_statistics(tf, tf_keras.backend)

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    import peer_models as pm

    blocks = np.load(args.blocks)
    out = {}
    for key in blocks.files:
        stage = key.split("__")[0].replace("_small", "")
        x = to_keras(blocks[key].astype(np.float32))
        size = output_size(stage, x.shape)
        build, h5 = (pm.build_liver_model, pm.LIVER_H5) if stage == "liver" else (pm.build_lesion_model, pm.LESION_H5)
        model = build(segment_size=size)
        pm.load_h5_weights(model, h5)
        y = np.asarray(model.predict_on_batch(x[None, ..., None]))[0, ..., 0]
        out[key] = from_keras(y).astype(np.float32)
        print(key, x.shape, "->", y.shape, flush=True)
        tf.keras.backend.clear_session()
    np.savez_compressed(args.out, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
