"""Grading throughput: a generated class of a1_numpy_convolution, graded with JOBS=1 and JOBS=2.

    python benchmarks/bench_grading.py            # 100 submissions (about 15 minutes on 2 cores)
    python benchmarks/bench_grading.py --n 20     # a quicker look

    python benchmarks/bench_grading.py --scheduler tcp://host:8786 --jobs 1 0   # also on a Dask cluster

The class mixes the example submissions (alice: correct; bob and dave: partially
wrong; carol: the untouched template) in turn. Each run grades the whole class
the way ``make grade`` does: intake, nbgrader autograde in the sandboxed kernel,
the trusted verifier in its sandboxed child, one gradebook writer. JOBS=1 grades
in this process; JOBS=N > 1 on a Dask LocalCluster of N single-threaded workers
(tools/distributed_grading.py), whose start is part of the time; JOBS=0 (with
--scheduler) on the given Dask cluster. It prints submissions per minute for
each run, the speed-up, and whether every run gave every student the same scores
(they must).
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import course  # noqa: E402

AID = "a1_numpy_convolution"
EXAMPLES = ("alice", "bob", "dave", "carol")


def make_class(state: pathlib.Path, n: int) -> None:
    for index in range(n):
        example = EXAMPLES[index % len(EXAMPLES)]
        target = state / "submitted" / f"s{index:03d}" / AID
        target.mkdir(parents=True)
        shutil.copy2(ROOT / "examples" / "submissions" / example / AID / f"{AID}.ipynb", target / f"{AID}.ipynb")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="submissions in the class (default 100)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2],
                        help="JOBS values to compare (default 1 2); 0: the cluster of --scheduler")
    parser.add_argument("--scheduler", help="a Dask scheduler's address (or scheduler file) for JOBS=0")
    args = parser.parse_args(argv)
    if 0 in args.jobs and not args.scheduler:
        parser.error("JOBS=0 needs --scheduler")
    seed = 20261121
    rates, scores = {}, {}
    with tempfile.TemporaryDirectory(prefix="cnn-bench-grading-") as scratch:
        for jobs in args.jobs:
            state = pathlib.Path(scratch) / f"jobs{jobs}"
            make_class(state, args.n)
            started = time.perf_counter()
            results = course.grade([AID], state, seed, quiet=True, jobs=max(jobs, 1),
                                   scheduler=args.scheduler if jobs == 0 else None)
            seconds = time.perf_counter() - started
            rates[jobs] = args.n / seconds * 60
            scores[jobs] = {student: entry[AID]["score"] for student, entry in results.items()}
            how = ("in this process" if jobs == 1 else f"on the cluster of {args.scheduler}" if jobs == 0
                   else f"on a Dask LocalCluster of {jobs} workers")
            print(f"JOBS={jobs} ({how}): {args.n} submissions in {seconds:.0f} s = {rates[jobs]:.1f} submissions/min")
    base = args.jobs[0]
    for jobs in args.jobs[1:]:
        print(f"speed-up JOBS={jobs} vs JOBS={base}: {rates[jobs] / rates[base]:.2f}x")
    same = all(scores[j] == scores[base] for j in args.jobs)
    print(f"identical scores in every run: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
