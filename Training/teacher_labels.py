"""Cache a teacher's soft liver probability for every shared CT (distillation targets).

`python -m Training.teacher_labels --model-set pyliverlesionseg --out Training/.cache/teacher [--cases ...]`

Per case `<case>.npz`: `prob` (z, y, x) float16, the teacher's liver probability kept inside its largest
candidate (what its cascade keeps), `prob_raw` (before that), and the grid (spacing x, y, z mm, origin,
direction): the CT's canonical (LPS) grid at the teacher's spacing without its median prefilter, i.e. the
grid `Training.data.cache` resamples students' CTs to. `manifest.json` records the teacher, each case's
source file and seconds. Cases already made with the same teacher and CT file are skipped.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LiverTumorSegLib.cascade import Reporter, channel, liver_candidate, run_model
from LiverTumorSegLib.config import RuntimeConfig, SegmentationConfig, models_dir
from LiverTumorSegLib.io import read_image
from LiverTumorSegLib.model_sets import resolve_model_set
from LiverTumorSegLib.preprocess import canonical
from LiverTumorSegLib.resample import grid_for_spacing, resample_like
from LiverTumorSegLib.runtime import Model, load_model_file

from .data.shared_cts import SHARED_CTS, shared_ct
from .data.teacher_store import save_teacher_npz

MANIFEST = "manifest.json"


def student_grid(ct: sitk.Image, spacing: tuple[float, float, float]) -> sitk.Image:
    """Empty image of the CT's canonical grid at `spacing` (x, y, z) mm (the students' model grid)."""
    return grid_for_spacing(canonical(ct), spacing)


def teacher_probability(ct: sitk.Image, model: Model, threads: int) -> tuple[np.ndarray, np.ndarray, sitk.Image]:
    """(kept prob, raw prob) (z, y, x) float32 on the students' grid, and that grid, for one CT in HU."""
    cfg = SegmentationConfig(runtime=RuntimeConfig(threads=threads))
    _, probs = run_model(ct, model, cfg, lambda f, m: None, Reporter())
    p_img = channel(probs, model.manifest.class_index("liver"))
    grid = student_grid(ct, model.manifest.spacing)
    p_img = resample_like(p_img, grid, interpolator=sitk.sitkLinear, default=0.0, pixel_type=sitk.sitkFloat32)
    raw = sitk.GetArrayFromImage(p_img)
    kept = np.where(liver_candidate(raw, model.manifest.liver_opening_voxels), raw, 0.0)
    return kept.astype(np.float32), raw, grid


def source_stamp(path: Path) -> dict:
    """Identity of a source file: absolute path, size, modification time (ns)."""
    st = path.stat()
    return {"path": str(path.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def teacher_record(model: Model, model_set: str) -> dict:
    """What made the targets: set, name, version, ONNX sha256."""
    m = model.manifest
    return {"model_set": model_set, "name": m.name, "version": m.version, "sha256": m.sha256, "device": model.device}


def read_manifest(out: Path) -> dict:
    """The cache manifest (empty skeleton when absent)."""
    path = out / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {"teacher": {}, "cases": {}}


def write_manifest(out: Path, manifest: dict) -> None:
    """Write the manifest atomically."""
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(out / MANIFEST)


def make_case(case_id: str, root: Path, out: Path, model: Model, threads: int) -> dict:
    """Run the teacher on one shared CT, write `<case_id>.npz`; returns its manifest entry."""
    src = root / shared_ct(case_id).image
    t0 = time.perf_counter()
    ct = sitk.Cast(read_image(str(src)), sitk.sitkFloat32)
    kept, raw, grid = teacher_probability(ct, model, threads)
    seconds = time.perf_counter() - t0
    save_teacher_npz(out / f"{case_id}.npz", {"prob": kept, "prob_raw": raw}, grid)
    ml = float((kept > 0.5).sum() * np.prod(grid.GetSpacing()) / 1000)
    return {"file": f"{case_id}.npz", "source": source_stamp(src), "seconds": round(seconds, 1), "threads": threads,
            "shape_zyx": list(kept.shape), "liver_ml": round(ml, 1),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def up_to_date(entry: dict | None, src: Path, out: Path) -> bool:
    """True when `entry` was made from this very source file and its npz exists."""
    return bool(entry) and entry["source"] == source_stamp(src) and (out / entry["file"]).is_file()


def run(model_set: str, root: Path, out: Path, cases: list[str], threads: int, device: str) -> dict:
    """Make every missing/outdated case; returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    model = load_model_file(resolve_model_set(models_dir(), model_set).liver, RuntimeConfig(device, threads), "liver")
    manifest, teacher = read_manifest(out), teacher_record(model, model_set)
    if manifest["teacher"] and {k: v for k, v in manifest["teacher"].items() if k != "device"} != \
            {k: v for k, v in teacher.items() if k != "device"}:
        manifest = {"teacher": {}, "cases": {}}  # another teacher: start over
    manifest["teacher"] = teacher
    for case_id in cases:
        if up_to_date(manifest["cases"].get(case_id), root / shared_ct(case_id).image, out):
            continue
        manifest["cases"][case_id] = make_case(case_id, root, out, model, threads)
        write_manifest(out, manifest)
        print(json.dumps({"case": case_id, **manifest["cases"][case_id]}), flush=True)
    write_manifest(out, manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-set", default="pyliverlesionseg")
    p.add_argument("--shared", default="../shared/data", help="shared data root")
    p.add_argument("--out", default="Training/.cache/teacher")
    p.add_argument("--cases", nargs="*", default=[c.case_id for c in SHARED_CTS])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    a = p.parse_args(argv)
    run(a.model_set, Path(a.shared), Path(a.out), a.cases, a.threads, a.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
