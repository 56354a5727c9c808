"""Cohort batches on Dask: one task per case on local worker processes or any Dask cluster, one run table.

`run_cohort(inputs, output, client=...)` is the Python entry point; `livertumorseg predict ... --workers N`
and `--scheduler ADDRESS` call it. Without a client or workers it runs the cases one after another in
this process (same files, same table). Dask is imported only here, and only when a cluster is used.
"""
from __future__ import annotations

import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable

from .caserun import SKIPPED, case_outputs, plan_job, process_case, usable_cores
from .cases import CaseJob, CaseOptions, collect_jobs
from .errors import LiverTumorSegError
from .io import check_output_folder, no_inputs_message
from .runtable import RunTable, failed_row, skipped_row

#: A case whose worker dies this many times is recorded as failed (the first death re-runs it elsewhere).
WORKER_DEATHS_ALLOWED = 1
#: A case raising an unexpected exception is retried this many times before it is recorded as failed.
RETRIES = 1


def local_threads(workers: int, cores: int | None = None) -> int:
    """Threads per case for `workers` processes sharing this machine: cores ÷ workers, at least 1."""
    return max(1, (cores or usable_cores()) // workers)


def cluster_threads(client) -> int | None:
    """Threads per case so that the tasks running at once on each machine fit its cores; the smallest wins.

    Workers that see the same cores (same host, same affinity mask) share them among their task slots.
    None when the cluster has no workers yet (each worker then uses its cores ÷ its slots).
    """
    workers = client.scheduler_info(n_workers=-1)["workers"]
    if not workers:
        return None
    masks = client.run(_affinity)
    groups: dict[tuple, int] = {}
    for addr, info in workers.items():
        key = (info.get("host"), masks.get(addr))
        groups[key] = groups.get(key, 0) + int(info.get("nthreads", 1))
    return min(max(1, len(mask or ()) // slots) if mask else 1 for (_, mask), slots in groups.items())


def _affinity() -> tuple[int, ...]:
    """The CPU cores this process may use (run on each worker)."""
    import os

    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return tuple(range(os.cpu_count() or 1))


def local_cluster(workers: int, threads: int):
    """A LocalCluster of `workers` processes, one case at a time each, with `threads` for each case."""
    import dask
    from distributed import LocalCluster

    env = {"OMP_NUM_THREADS": str(threads), "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads)}
    with dask.config.set({"distributed.scheduler.allowed-failures": WORKER_DEATHS_ALLOWED}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address=":0", env=env)


def run_cohort(inputs: Iterable[str | Path], output: str | Path, *, client=None, workers: int | None = None,
               options: CaseOptions | None = None, progress: bool = True) -> list[dict]:
    """Segment every case of `inputs` (files, folders, CSV manifests) into `output`; the run table's rows.

    With a Dask `client` each case is one task on its workers; with `workers` a LocalCluster of that many
    processes is started for the run; with neither, the cases run one after another here. Finished
    cases (all outputs present) are skipped unless `options.overwrite`. `output/run.csv` and `run.json`
    are rewritten as each case finishes. With a cluster, `output` must be on a file system the workers share.
    """
    options = replace(options or CaseOptions(output=Path(output)), output=Path(output))
    inputs = list(inputs)
    jobs = collect_jobs(inputs, Path(output))
    if not jobs:
        raise LiverTumorSegError(no_inputs_message(inputs))
    check_output_folder(options.output)
    table = RunTable(options.output, [j.case for j in jobs])
    with _progress(len(jobs), progress) as tick:
        todo = _skip_finished(jobs, options, table, tick)
        if client is None and not workers:
            _run_here(todo, options, table, tick)
        elif client is None:
            threads = options.threads or local_threads(workers)
            with local_cluster(workers, threads) as cluster, _client(cluster) as own:
                _run_on(own, todo, replace(options, threads=threads), table, tick)
        else:
            _run_on(client, todo, replace(options, threads=options.threads or cluster_threads(client)), table, tick)
    table.write()
    return table.sorted_rows()


def _client(cluster):
    """A Dask client of `cluster`."""
    from distributed import Client

    return Client(cluster)


def _skip_finished(jobs: list[CaseJob], options: CaseOptions, table: RunTable, tick: Callable) -> list[CaseJob]:
    """Record complete cases made with these settings as skipped (no task is sent for them); the cases left to run."""
    todo = []
    for job in jobs:
        try:
            plan = plan_job(job, options)[0]
        except LiverTumorSegError:
            plan = "failed"  # its task says why
        if plan == SKIPPED:
            table.record(skipped_row(job, case_outputs(options.output, job.case, options.formats)), write=False)
            tick("skipped")
        else:
            todo.append(job)
    table.write()
    return todo


def _run_here(jobs: list[CaseJob], options: CaseOptions, table: RunTable, tick: Callable) -> None:
    """Run the cases one after another in this process, each retried once after an unexpected error."""
    for job in jobs:
        for attempt in range(RETRIES + 1):
            try:
                row = process_case(job, options)
                break
            except Exception as exc:  # noqa: BLE001 - an unexpected failure of one case must not stop the run
                row = failed_row(job, f"failed {attempt + 1} times: {type(exc).__name__}: {exc}")
        table.record(row)
        tick(row["status"])


def _run_on(client, jobs: list[CaseJob], options: CaseOptions, table: RunTable, tick: Callable) -> None:
    """One Dask task per case, no more in flight than the cluster has task slots; record rows as they finish.

    Keeping only running cases on the workers means a worker that dies takes only its case in flight
    (Dask counts a death against every case a worker holds, queued or running).
    """
    from distributed import as_completed

    run_id = uuid.uuid4().hex[:8]
    queue = list(enumerate(jobs))[::-1]
    in_flight: dict = {}
    finished = as_completed()

    def fill() -> None:
        while queue and len(in_flight) < max(1, sum(client.nthreads().values())):
            i, job = queue.pop()
            future = client.submit(process_case, job, options, key=f"livertumorseg-{run_id}-{i}-{job.case}",
                                   pure=False, retries=RETRIES)
            in_flight[future] = job
            finished.add(future)

    fill()
    try:
        for future in finished:
            row = _row_of(future, in_flight.pop(future))
            table.record(row)
            tick(row["status"])
            fill()
    finally:
        client.cancel(list(in_flight))


def _row_of(future, job: CaseJob) -> dict:
    """The row a finished task returned, or a failed row saying why the task failed twice.

    Cases complete before the run were skipped without a task, so a task finding its case complete
    means an earlier attempt in this run wrote the outputs: that case is done.
    """
    from distributed import KilledWorker

    try:
        row = future.result()
    except KilledWorker:
        return failed_row(job, f"the worker died {WORKER_DEATHS_ALLOWED + 1} times while running this case "
                               "(out of memory or killed); outputs of this case were not written")
    except Exception as exc:  # noqa: BLE001 - the task's own exception, re-raised on the client
        return failed_row(job, f"failed {RETRIES + 1} times: {type(exc).__name__}: {exc}")
    if row["status"] == "skipped":  # it was incomplete when sent: an attempt of this run finished it, then its
        # worker died before handing over the row, and Dask ran the task again
        row = {**row, "status": "done", "reason": "finished by an earlier attempt in this run (its worker died after)"}
    return row


class _progress:
    """A tqdm bar over cases (with ETA) as a context; `tick(status)` advances it by one case."""

    def __init__(self, total: int, enabled: bool):
        """A bar for `total` cases, shown on a terminal when `enabled`."""
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="case", desc="cases", file=sys.stderr, disable=None if enabled else True,
                        dynamic_ncols=True)
        self.counts: dict[str, int] = {}

    def __enter__(self) -> Callable[[str], None]:
        """The tick callback."""
        return self.tick

    def tick(self, status: str) -> None:
        """One more case finished with `status`."""
        self.counts[status] = self.counts.get(status, 0) + 1
        self.bar.set_postfix(self.counts, refresh=False)
        self.bar.update(1)

    def __exit__(self, *exc) -> None:
        """Close the bar."""
        self.bar.close()
