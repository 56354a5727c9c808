"""The run table OUT/run.csv (+ run.json): one row per finished case, rewritten atomically as cases finish."""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from .cases import CaseJob
from .io import atomic_write, write_json
from .result import SegmentationResult

STAGES = ("read_and_check", "load_models", "stage1_liver", "roi", "stage2_tumor", "resample_back", "lesions", "write")
COLUMNS = ["case", "status", "reason", "input", "model_set", "device", "worker", "seconds_total",
           *(f"seconds_{s}" for s in STAGES), "liver_ml", "tumor_ml", "tumor_burden_percent", "lesions",
           "labels", "lesion_table", "lesion_json", "warnings"]
OUTPUT_COLUMNS = {"lesions": "lesion_table", "lesions_json": "lesion_json"}
LABEL_KEYS = ("nifti", "seg.nrrd", "dicom-seg", "dicom-sr")  # the CLI's output_paths keys of label maps / reports


def _base(job: CaseJob, status: str, reason: str = "") -> dict:
    """The columns every row has."""
    return {"case": job.case, "status": status, "reason": reason, "input": str(job.input)}


def _outputs(paths: dict[str, Path]) -> dict:
    """Output path columns of a row."""
    labels = ";".join(str(paths[k]) for k in LABEL_KEYS if k in paths)
    return {"labels": labels, **{col: str(paths[key]) for key, col in OUTPUT_COLUMNS.items() if key in paths}}


def done_row(job: CaseJob, result: SegmentationResult, paths: dict[str, Path], model_set: str, worker: str) -> dict:
    """Row of a case segmented in this run: model set, device, seconds per stage, volumes, outputs."""
    s = result.summary()
    seconds = {f"seconds_{k}": round(v, 3) for k, v in result.timings.items()}
    return {**_base(job, "done"), "model_set": model_set, "device": result.device, "worker": worker,
            "seconds_total": round(sum(result.timings.values()), 3), **seconds, "liver_ml": s["liver_volume_ml"],
            "tumor_ml": s["tumor_volume_ml"], "tumor_burden_percent": s["tumor_burden_percent"],
            "lesions": s["lesions"], **_outputs(paths), "warnings": " | ".join(result.warnings)}


def skipped_row(job: CaseJob, paths: dict[str, Path]) -> dict:
    """Row of a case whose outputs were complete already; its numbers are read back from its lesion JSON."""
    row = {**_base(job, "skipped", "outputs complete from an earlier run"), **_outputs(paths)}
    try:
        saved = json.loads(Path(paths["lesions_json"]).read_text())
    except (OSError, ValueError, KeyError):
        return row
    return {**row, "device": saved.get("device", ""), "liver_ml": saved.get("liver_volume_ml", ""),
            "tumor_ml": saved.get("tumor_volume_ml", ""), "tumor_burden_percent": saved.get("tumor_burden_percent", ""),
            "lesions": len(saved.get("lesions", []))}  # the JSON's "lesions" is the list of lesion rows


def failed_row(job: CaseJob, reason: str, worker: str = "") -> dict:
    """Row of a case that could not be segmented, with the reason."""
    return {**_base(job, "failed", reason), "worker": worker}


class RunTable:
    """OUT/run.csv and OUT/run.json of one run, in input order, rewritten atomically after every case."""

    def __init__(self, out_dir: Path, cases: list[str]):
        """A table for `cases` (input order) whose files go to `out_dir`."""
        self.csv_path = Path(out_dir) / "run.csv"
        self.json_path = self.csv_path.with_suffix(".json")
        self.order = {case: i for i, case in enumerate(cases)}
        self.rows: dict[str, dict] = {}
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    def record(self, row: dict, write: bool = True) -> None:
        """Add (or replace) a finished case's row and (unless `write` is False) rewrite both files."""
        self.rows[row["case"]] = row
        if write:
            self.write()

    def sorted_rows(self) -> list[dict]:
        """Rows in input order."""
        return sorted(self.rows.values(), key=lambda r: self.order.get(r["case"], len(self.order)))

    def counts(self) -> dict[str, int]:
        """Number of cases per status."""
        out = {"done": 0, "skipped": 0, "failed": 0}
        for row in self.rows.values():
            out[row["status"]] = out.get(row["status"], 0) + 1
        return out

    def write(self) -> None:
        """Rewrite run.csv and run.json atomically (a killed run leaves the table of what finished)."""
        rows = self.sorted_rows()
        extra = sorted({k for r in rows for k in r} - set(COLUMNS))
        with atomic_write(self.csv_path, True) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS + extra, restval="")
            writer.writeheader()
            writer.writerows(rows)
        write_json({"started": self.started, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "cases": len(self.order), "finished": len(rows), **self.counts(), "rows": rows},
                   self.json_path, overwrite=True)
