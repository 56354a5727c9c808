"""`livertumorseg predict` over a cohort: --workers N (local processes), --scheduler ADDRESS, CSV manifests."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .cases import CaseOptions, is_manifest
from .errors import LiverTumorSegError


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def add_arguments(predict: argparse.ArgumentParser) -> None:
    """The cohort options of `predict`."""
    g = predict.add_argument_group("cohort (Dask)", "run cases in parallel; writes OUT/run.csv and run.json. "
                                   "An input ending in .csv is a manifest: one row per case, path[,case id]")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="run N local worker processes (a Dask LocalCluster); threads per case = cores / N unless --threads")
    x.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="use the running Dask scheduler at ADDRESS (e.g. tcp://host:8786); OUT must be shared with its workers")


def wanted(args: argparse.Namespace) -> bool:
    """True when `predict` should run as a cohort (workers, a scheduler or a CSV manifest was given)."""
    return bool(args.workers or args.scheduler or any(is_manifest(p) for p in args.inputs))


def run(args: argparse.Namespace) -> int:
    """Run the cohort; print failures and where the run table is; exit 1 if any case failed."""
    from .cohort import run_cohort
    from .data import DEMO_CT

    inputs = list(args.inputs) + ([DEMO_CT] if args.demo else [])
    options = CaseOptions(output=args.output, formats=tuple(args.formats), overwrite=args.overwrite, device=args.device,
                          threads=args.threads, model_set=args.model_set, liver_only=args.liver_only,
                          min_lesion_mm3=args.min_lesion_mm3, force=args.force, models_dir=args.models_dir,
                          cpu_engine=args.cpu_engine, tta=args.tta,
                          modality=args.modality)
    if not args.verbose and (args.workers or args.scheduler):
        _quiet_dask()
    client = _connect(args.scheduler) if args.scheduler else None
    try:
        rows = run_cohort(inputs, args.output, client=client, workers=args.workers, options=options)
    finally:
        if client is not None:
            client.close()
    for row in rows:
        if row["status"] == "failed":
            print(f"{row['case']}: failed: {row['reason']}", file=sys.stderr)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed")}
    print(f"{len(rows)} case(s): {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed; "
          f"run table: {Path(args.output) / 'run.csv'} (and run.json)")
    return 1 if counts["failed"] else 0


def _quiet_dask() -> None:
    """Show only Dask's warnings and errors (not its start/stop chatter) unless --verbose."""
    import distributed  # noqa: F401 - creates its loggers

    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.WARNING)


def _connect(address: str):
    """A Dask client of the scheduler at `address`, with a clear error when it cannot connect."""
    from distributed import Client

    try:
        return Client(address, timeout=30)
    except (OSError, TimeoutError) as exc:
        raise LiverTumorSegError(f"cannot connect to the Dask scheduler at {address}: {exc}") from exc
