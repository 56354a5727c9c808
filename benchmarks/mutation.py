"""Mutation testing (cosmic-ray) of the cascade, post-processing, lesions, I/O and the Slicer batch.

Run before resolving work on those modules; it is slow (each mutant runs the module's tests), so it is
not part of CI. Every module is mutated in a scratch copy of the work tree, never in your files:

    python benchmarks/mutation.py                       # all modules, every mutant
    python benchmarks/mutation.py lesions cascade --sample 40 --seed 1

Prints each surviving mutant (a change no test noticed) as a diff, and a count per module.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIB = "Testing/lib/"
TARGETS: dict[str, tuple[str, list[str]]] = {  # name: (module, the tests that should kill its mutants)
    "cascade": ("LiverTumorSegLib/cascade.py", [LIB + "test_tumor_path.py", LIB + "test_cancel.py"]),
    "postprocess": ("LiverTumorSegLib/postprocess.py", [LIB + "test_postprocess_lesions.py", LIB + "test_tumor_path.py"]),
    "lesions": ("LiverTumorSegLib/lesions.py", [LIB + "test_postprocess_lesions.py", LIB + "test_lesions_realistic_grids.py",
                                                LIB + "test_tumor_path.py"]),
    "io": ("LiverTumorSegLib/io.py", [LIB + "test_validation_io.py", LIB + "test_atomic_writes.py", LIB + "test_cli_tumor_path.py"]),
    "batch": ("LiverTumorSeg/LiverTumorSegLogic/batch.py", ["Testing/slicer/test_slicer_batch.py",
                                                            "Testing/slicer/test_slicer_tumor_path.py"]),
}


def scratch_copy(dest: Path) -> Path:
    """Copy the work tree's tracked and untracked-but-not-ignored files (the current state) into `dest`."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                           check=True, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def write_config(folder: Path, module: str, tests: list[str], timeout_s: float) -> Path:
    """A cosmic-ray config mutating `module` and running `tests` (stop at the first failure)."""
    command = f"{sys.executable} -m pytest -x -q -p no:cacheprovider -o addopts= " + " ".join(tests)
    path = folder / "cosmic-ray.toml"
    path.write_text(f'[cosmic-ray]\nmodule-path = "{module}"\ntimeout = {timeout_s}\nexcluded-modules = []\n'
                    f'test-command = "{command}"\n\n[cosmic-ray.distributor]\nname = "local"\n')
    return path


def keep_sample(session: Path, sample: int | None, seed: int) -> int:
    """Mark all but `sample` random pending mutants as skipped; return how many will run."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        pending = sorted(db.pending_work_items, key=lambda item: item.job_id)
        if sample is None or sample >= len(pending):
            return len(pending)
        for item in random.Random(seed).sample(pending, len(pending) - sample):
            db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
        return sample


def survivors(session: Path) -> tuple[list[str], int]:
    """(diffs of the surviving mutants, number of mutants tested)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    with use_db(str(session), WorkDB.Mode.open) as db:
        done = [(item, result) for item, result in db.completed_work_items if result.worker_outcome != WorkerOutcome.SKIPPED]
    alive = [result.diff or "" for _, result in done if result.test_outcome == TestOutcome.SURVIVED]
    broken = [result for _, result in done if result.worker_outcome != WorkerOutcome.NORMAL]
    if broken:  # a timeout or a crashed worker counts as killed: say so, it may be the environment
        print(f"{len(broken)} mutants ended abnormally: {sorted({str(r.worker_outcome) for r in broken})}")
    return alive, len(done)


def run_target(name: str, tree: Path, sample: int | None, seed: int, timeout_s: float) -> tuple[list[str], int]:
    """Mutate one module in `tree` and return its survivors."""
    module, tests = TARGETS[name]
    config = write_config(tree, module, tests, timeout_s)
    session = tree / f"{name}.sqlite"
    cosmic = [sys.executable, "-m", "cosmic_ray.cli"]
    subprocess.run(cosmic + ["init", str(config), str(session)], cwd=tree, check=True)
    print(f"{name}: {keep_sample(session, sample, seed)} mutants of {module}, tests {' '.join(tests)}", flush=True)
    subprocess.run(cosmic + ["baseline", str(config)], cwd=tree, check=True)  # the unmutated tests must pass
    subprocess.run(cosmic + ["exec", str(config), str(session)], cwd=tree, check=True)
    return survivors(session)


def main() -> int:
    """Parse arguments, run every chosen module, print the survivors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", choices=[[], *TARGETS], default=list(TARGETS))
    parser.add_argument("--sample", type=int, default=None, help="test only this many random mutants per module")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy and its session databases")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one mutant's tests may take")
    args = parser.parse_args()
    shared = REPO.parent / "shared" / "data"
    os.environ.setdefault("LIVERTUMORSEG_SHARED_DATA", str(shared.resolve()))  # the copy has no ../shared
    tree = scratch_copy(Path(tempfile.mkdtemp(prefix="lts-mutation-")))
    totals = {}
    try:
        for name in args.modules or list(TARGETS):
            alive, tested = run_target(name, tree, args.sample, args.seed, args.timeout)
            totals[name] = (len(alive), tested)
            for diff in alive:
                print(f"--- survived in {name}:\n{diff}")
    finally:
        if args.keep:
            print(f"scratch copy and sessions kept in {tree}")
        else:
            shutil.rmtree(tree, ignore_errors=True)
    for name, (alive, tested) in totals.items():
        print(f"{name}: {alive} of {tested} mutants survived")
    return 0


if __name__ == "__main__":
    sys.exit(main())
