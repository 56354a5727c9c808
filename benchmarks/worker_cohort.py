"""One cohort configuration in its own process: `predict FOLDER --workers N --threads T` as the CLI runs it.

Run by bench_cohort.py. Starts the same LocalCluster the CLI starts, runs the cohort through
`run_cohort` (what the CLI calls), and reports the run's wall time (cluster start included) and
each worker process's own peak RSS, read inside the worker before the cluster closes.
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from common import emit
from distributed import Client

from LiverTumorSegLib.cases import CaseOptions
from LiverTumorSegLib.cohort import local_cluster, run_cohort


def _peak_rss_mb() -> float:
    """This process's peak RSS in MB (run on each worker)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("folder", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--models-dir", type=Path, default=None)
    a = p.parse_args()
    t0 = time.perf_counter()
    with local_cluster(a.workers, a.threads) as cluster, Client(cluster) as client:
        started = time.perf_counter() - t0
        rows = run_cohort([a.folder], a.output, client=client, progress=False,
                          options=CaseOptions(output=a.output, threads=a.threads, models_dir=a.models_dir, overwrite=True))
        wall = time.perf_counter() - t0
        rss = sorted(client.run(_peak_rss_mb).values())
    emit({"run_wall_s": round(wall, 3), "cluster_start_s": round(started, 3), "worker_peak_rss_mb": rss,
          "statuses": [r["status"] for r in rows]})
