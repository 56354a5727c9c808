"""Leave-one-case-out evaluation of the whole cascade: for each case, train both stages without it,
export, and segment it with `LiverTumorSegLib.segment`.

`python -m Training.loco --cases chaos_ct3 totalseg_ct lits117_roi --out-dir Training/runs/loco [--set key=value ...]`
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from LiverTumorSegLib.evaluation import markdown_summary, write_csv

from . import evaluate, export, train

STAGES = ("liver", "tumor")


def run_fold(case: str, args: argparse.Namespace) -> list[dict]:
    """Train the stages without `case`, export them, evaluate the cascade on `case`; returns its rows.

    Cases outside `--tumor-cases` (when given) are evaluated with the liver stage alone (`liver_only`),
    which saves training a tumor model for them; their tumor scores are then undefined.
    """
    fold = Path(args.out_dir) / case
    models = fold / "models"
    liver_only = bool(args.tumor_cases) and case not in args.tumor_cases
    for stage in STAGES[:1] if liver_only else STAGES:
        extra = args.set + (args.liver_set if stage == "liver" else args.tumor_set)
        run_dir = fold / stage
        train.main(["--config", f"{args.configs}/{stage}.yaml", f"data.exclude_cases=[{case}]", "data.train_on_all=true",
                    f"train.out_dir={run_dir}", "train.progress=false", *extra])
        if export.main(["--checkpoint", str(run_dir / "last.pt"), "--out-dir", str(models), "--threads", "2"]) != 0:
            raise RuntimeError(f"export failed for fold {case} stage {stage}")
    evaluate.main(["--config", f"{args.configs}/liver.yaml", "--cases", case, "--models-dir", str(models),
                   "--out-dir", str(fold / "evaluation"), *(["--liver-only"] if liver_only else [])])
    return fold_rows(case, args)


def fold_rows(case: str, args: argparse.Namespace) -> list[dict]:
    """The evaluation rows of a finished fold."""
    with open(Path(args.out_dir) / case / "evaluation" / "metrics.csv") as f:
        return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _num(text: str):
    """CSV text back to a number where it is one."""
    try:
        return float(text)
    except ValueError:
        return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", required=True, help="case ids, each held out in turn")
    p.add_argument("--configs", default="Training/configs", help="folder with liver.yaml and tumor.yaml")
    p.add_argument("--out-dir", default="Training/runs/loco")
    p.add_argument("--tumor-cases", nargs="*", default=[], help="only these folds train a tumor stage (default: all)")
    p.add_argument("--collect", action="store_true", help="only gather finished folds (e.g. run in parallel) into the report")
    p.add_argument("--set", nargs="*", default=[], help="overrides for both stages")
    p.add_argument("--liver-set", nargs="*", default=[], help="overrides for the liver stage")
    p.add_argument("--tumor-set", nargs="*", default=[], help="overrides for the tumor stage")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every fold, then write loco_metrics.csv and loco_report.md."""
    args = parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows = [row for case in args.cases for row in (fold_rows if args.collect else run_fold)(case, args)]
    write_csv(rows, out / "loco_metrics.csv")
    command = "python -m Training.loco " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (f"# Leave-one-case-out evaluation\n\n- command: `{command}`\n- wall time: {time.time() - t0:.0f} s\n\n"
            + markdown_summary(rows))
    (out / "loco_report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
