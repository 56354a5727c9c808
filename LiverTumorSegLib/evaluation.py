"""Evaluate predicted label maps against reference label maps stored as files: CSV rows and a summary.

Label files hold 0 background, 1 liver, 2 tumor on a 3-D grid; prediction and reference must share
the grid (size, spacing, origin, direction). `run_evaluation` is the whole job behind
`livertumorseg evaluate PRED REF -o OUT`.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import EvaluationError, OutputExistsError
from .geometry import same_grid
from .io import IMAGE_SUFFIXES, atomic_write, case_name, is_image_file, read_image
from .metrics import GlobalDice, evaluate_case

Progress = Callable[[int, int, str], None]  # (cases done, cases in all, case id)


def case_id(path: Path) -> str:
    """Case name of a label file: the file name without its extension and without a trailing `_seg`."""
    return case_name(path).removesuffix("_seg")


def _label_files(folder: Path) -> dict[str, Path]:
    """Label files of `folder` by case id; ValueError when two files claim the same case."""
    files: dict[str, Path] = {}
    for path in sorted(Path(folder).iterdir()):
        if not is_image_file(path):
            continue
        case = case_id(path)
        if case in files:
            raise EvaluationError(f"{folder} holds two files for case {case!r}: {files[case].name} and {path.name}")
        files[case] = path
    return files


def pair_folders(pred_dir: Path, ref_dir: Path) -> list[tuple[Path, Path]]:
    """(prediction, reference) file pairs matched by case id, sorted by case.

    Every prediction needs a reference (ValueError otherwise); references without a prediction are
    left out, so a reference folder may hold more cases than were predicted.
    """
    preds, refs = _label_files(pred_dir), _label_files(ref_dir)
    if not preds:
        raise EvaluationError(f"no label files ({', '.join(IMAGE_SUFFIXES)}) in {pred_dir}")
    missing = sorted(set(preds) - set(refs))
    if missing:
        raise EvaluationError(f"no reference in {ref_dir} for the predicted case(s): {', '.join(missing)}")
    return [(preds[case], refs[case]) for case in sorted(preds)]


def _read_labels(path: Path) -> tuple[sitk.Image, np.ndarray]:
    """A label file as (image, uint8 array (z, y, x)); ValueError unless it is 3-D with labels 0, 1, 2."""
    image = read_image(path)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise EvaluationError(f"{path}: expected a 3-D single-component label map, got {image.GetDimension()}-D "
                         f"with {image.GetNumberOfComponentsPerPixel()} component(s)")
    array = sitk.GetArrayFromImage(image)
    low, high = array.min(), array.max()
    if low < 0 or high > 2 or (array.dtype.kind == "f" and not np.array_equal(array, np.rint(array))):
        raise EvaluationError(f"{path}: labels must be 0 background, 1 liver, 2 tumor; found values from {low} to {high}")
    return image, array.astype(np.uint8, copy=False)


def _check_same_grid(pred: sitk.Image, ref: sitk.Image, pred_path: Path, ref_path: Path) -> None:
    """ValueError naming what differs when the two images are not on the same voxel grid."""
    if same_grid(pred, ref):
        return
    aspects = [("size (x, y, z)", sitk.Image.GetSize), ("spacing (x, y, z) mm", sitk.Image.GetSpacing),
               ("origin mm", sitk.Image.GetOrigin), ("direction", sitk.Image.GetDirection)]
    differences = "; ".join(
        f"{name} {_fmt(get(pred))} vs {_fmt(get(ref))}" for name, get in aspects if get(pred) != get(ref)
    )
    raise EvaluationError(f"prediction {pred_path} and reference {ref_path} are not on the same voxel grid: "
                     f"{differences}. Resample the prediction onto the reference grid first.")


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def evaluate_files(
    pred_paths: Sequence[Path], ref_paths: Sequence[Path], progress: Progress | None = None
) -> list[dict]:
    """One row per (prediction, reference) file pair: {"case": id, **evaluate_case(...)}.

    The case id comes from the prediction's file name. Raises ValueError when the lists differ in
    length, a file is not a 0/1/2 label map, or a pair is not on the same grid.
    """
    if len(pred_paths) != len(ref_paths):
        raise EvaluationError(f"{len(pred_paths)} predictions but {len(ref_paths)} references")
    rows = []
    for done, (pred_path, ref_path) in enumerate(zip(pred_paths, ref_paths), start=1):
        (pred_image, pred), (ref_image, ref) = _read_labels(pred_path), _read_labels(ref_path)
        _check_same_grid(pred_image, ref_image, pred_path, ref_path)
        case = case_id(pred_path)
        rows.append({"case": case, **undefined_when_both_empty(evaluate_case(pred, ref, ref_image.GetSpacing()))})
        if progress:
            progress(done, len(pred_paths), case)
    return rows


def undefined_when_both_empty(row: dict) -> dict:
    """Dice and IoU of a structure absent from prediction and reference alike are undefined (nan), not 1.0;
    so are lesion precision, recall and F1 with no predicted and no reference lesion."""
    for structure in ("liver", "tumor"):
        if row[f"{structure}_pred_voxels"] == row[f"{structure}_ref_voxels"] == 0:
            row[f"{structure}_dice"] = row[f"{structure}_iou"] = float("nan")
    if row["lesions_pred"] == row["lesions_ref"] == 0:
        row["lesion_precision"] = row["lesion_recall"] = row["lesion_f1"] = float("nan")
    return row


def write_csv(rows: Sequence[dict], path: Path) -> Path:
    """Write the rows as CSV (columns in first-seen order, floats rounded to 6 decimals) and return `path`."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()})
    return Path(path)


def _summary_line(name: str, values: list[float]) -> str:
    """A markdown table row: metric | mean ± sd (sample sd, 0 for one case) | median | n (non-nan cases)."""
    finite = np.array([v for v in values if not math.isnan(v)], dtype=float)
    if finite.size == 0:
        return f"| {name} | nan | nan | 0 |"
    sd = finite.std(ddof=1) if finite.size > 1 else 0.0
    digits = 4 if np.abs(finite).max() < 10 else 1  # scores and mm get 4 decimals, volumes and counts 1
    mean, median = f"{finite.mean():.{digits}f}", f"{np.median(finite):.{digits}f}"
    return f"| {name} | {mean} ± {sd:.{digits}f} | {median} | {finite.size} |"


def markdown_summary(rows: Sequence[dict]) -> str:
    """Markdown: number of cases, mean ± sd, median and n (cases where defined) per metric, global Dice."""
    if not rows:
        raise EvaluationError("no evaluated cases to summarise")
    metrics = [k for k in rows[0] if k != "case" and not k.endswith("_voxels")]
    lines = ["# Evaluation summary", "", f"Cases: {len(rows)}", "",
             "| metric | mean ± sd | median | n |", "|---|---|---|---|"]
    lines += [_summary_line(name, [float(row[name]) for row in rows]) for name in metrics]
    lines += ["", "Global Dice (LiTS \"Dice global\": voxels summed over all cases):"]
    for structure in ("liver", "tumor"):
        total = GlobalDice()
        for row in rows:
            total.add_counts(row[f"{structure}_intersection_voxels"], row[f"{structure}_pred_voxels"],
                             row[f"{structure}_ref_voxels"])
        lines.append(f"- {structure}: {total.value:.4f}" if total.size_sum else
                     f"- {structure}: nan (no {structure} in any prediction or reference)")
    lines += ["", "nan marks an undefined value (e.g. a surface distance with an empty mask); "
              "means, sd and medians skip it, and n counts the cases they are over."]
    return "\n".join(lines) + "\n"


def _kind(path: Path) -> str:
    return "folder" if path.is_dir() else "file" if path.is_file() else "missing"


def run_evaluation(pred: Path, ref: Path, out_dir: Path, progress: Progress | None = None,
                   overwrite: bool = False) -> tuple[Path, Path]:
    """Evaluate PRED against REF (two label files, or two folders matched by case id); write
    `metrics.csv` (one row per case) and `summary.md` into `out_dir` and return both paths.
    Existing files there are refused (OutputExistsError, before any work) unless `overwrite`.
    This can be used without the CLI.
    """
    pred, ref, out_dir = Path(pred), Path(ref), Path(out_dir)
    csv_path, md_path = out_dir / "metrics.csv", out_dir / "summary.md"
    if not overwrite and (found := [p for p in (csv_path, md_path) if p.exists()]):
        raise OutputExistsError(f"output exists: {', '.join(map(str, found))} (use overwrite=True to replace it)")
    if _kind(pred) == _kind(ref) == "folder":
        pairs = pair_folders(pred, ref)
    elif _kind(pred) == _kind(ref) == "file":
        pairs = [(pred, ref)]
    else:
        raise EvaluationError(f"prediction and reference must both be files or both be folders: "
                         f"{pred} ({_kind(pred)}), {ref} ({_kind(ref)})")
    rows = evaluate_files([p for p, _ in pairs], [r for _, r in pairs], progress)
    with atomic_write(csv_path, overwrite) as tmp:
        write_csv(rows, tmp)
    with atomic_write(md_path, overwrite) as tmp:
        tmp.write_text(markdown_summary(rows), encoding="utf-8")
    return csv_path, md_path
