"""Writing a comparison: track-id label maps, the transform, the change table (CSV) and the report (JSON, last)."""
from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from ..errors import OutputExistsError
from ..io import atomic_write, write_image, write_json, write_table
from .compare import Comparison
from .matching import STATUSES, Track
from .response import change_row


def comparison_paths(out_dir: str | Path, name: str) -> dict[str, Path]:
    """Where a comparison's outputs go, by kind; the JSON comes last (written last, it marks a complete comparison)."""
    out = Path(out_dir)
    return {"baseline_tracks": out / f"{name}_baseline_tracks.nii.gz", "followup_tracks": out / f"{name}_followup_tracks.nii.gz",
            "transform": out / f"{name}_followup_to_baseline.tfm", "csv": out / f"{name}_lesion_changes.csv",
            "json": out / f"{name}_lesion_changes.json"}


def change_columns() -> list[str]:
    """Columns of the change table, in order."""
    return list(change_row(Track(0, "new", (), ())))


def write_comparison(comparison: Comparison, out_dir: str | Path, name: str, *, overwrite: bool = False) -> dict[str, Path]:
    """Write every output of `comparison` into `out_dir` as `<name>_*`; refuse (writing nothing) if one exists."""
    paths = comparison_paths(out_dir, name)
    there = [str(p) for p in paths.values() if p.exists()]
    if there and not overwrite:
        raise OutputExistsError(f"outputs exist: {', '.join(there)} (use overwrite=True to replace them)")
    write_image(comparison.baseline_tracks, paths["baseline_tracks"], overwrite=overwrite)
    write_image(comparison.followup_tracks, paths["followup_tracks"], overwrite=overwrite)
    with atomic_write(paths["transform"], overwrite) as tmp:
        sitk.WriteTransform(comparison.registration.transform, str(tmp))
    extra = {"name": name, **comparison.summary(), "statuses": list(STATUSES),
             "files": {k: str(p) for k, p in paths.items()}}
    rows = comparison.rows()
    if rows:
        write_table(rows, paths["csv"], overwrite=overwrite, extra=extra)
    else:  # no lesion at either time: a header-only table
        with atomic_write(paths["csv"], overwrite) as tmp:
            tmp.write_text(",".join(change_columns()) + "\n")
        write_json({**extra, "lesions": []}, paths["json"], overwrite=overwrite)
    return paths
