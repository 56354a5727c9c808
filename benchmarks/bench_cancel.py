"""Cancel latency: seconds from setting the cancel event (from another thread) to `segment` raising.

The tests only check that nothing runs after a cancel; the seconds depend on the machine's load, so they
are measured here and never asserted:

    python benchmarks/bench_cancel.py [--repeats 8] [--ct PATH] [--models-dir DIR]
"""
from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from pathlib import Path

from LiverTumorSegLib import segment
from LiverTumorSegLib.errors import CancelledError
from LiverTumorSegLib.io import read_image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CT = REPO.parent / "shared" / "data" / "chaos_ct3" / "ct.nii.gz"


def one_latency(image, delay_s: float, models_dir: str | None) -> float | None:
    """Cancel `delay_s` after the start; seconds until CancelledError (None if the run finished first)."""
    cancel, stamp = threading.Event(), {}

    def canceller() -> None:
        time.sleep(delay_s)
        stamp["t"] = time.perf_counter()
        cancel.set()

    thread = threading.Thread(target=canceller, daemon=True)
    thread.start()
    try:
        segment(image, device="cpu", models_dir=models_dir, cancel=cancel)
    except CancelledError:
        return time.perf_counter() - stamp["t"]
    finally:
        thread.join()
    return None


def main() -> None:
    """Measure and print the cancel latency at random moments of a run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--ct", type=Path, default=DEFAULT_CT)
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    image = read_image(args.ct)
    start = time.perf_counter()
    segment(image, device="cpu", models_dir=args.models_dir)
    duration = time.perf_counter() - start
    rng = random.Random(args.seed)
    latencies = [one_latency(image, rng.uniform(0.05, 0.9) * duration, args.models_dir) for _ in range(args.repeats)]
    got = [lat for lat in latencies if lat is not None]
    print(f"{args.ct.name}: full run {duration:.2f} s; cancel latency over {len(got)} runs: "
          f"median {statistics.median(got):.3f} s, max {max(got):.3f} s" if got else "every run finished before its cancel")


if __name__ == "__main__":
    main()
