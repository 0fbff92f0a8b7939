"""Time utils.conv.conv2d against PyTorch and TensorFlow (a script, not a test).

    python benchmarks/bench_conv.py [--repeat R] [--rounds K]

Problem: N=32 images, C=16 channels, 32x32 pixels, F=32 filters 3x3, stride 1,
no padding, float32. Timed in one process:

- ``utils.conv.conv2d_naive``: the explicit loops. Far too slow to repeat on the
  whole batch: it is timed once on one image and the time is multiplied by N
  (the loops do exactly N times the work for N images); the table says so.
- ``utils.conv.conv2d``: the vectorized im2col + BLAS version.
- PyTorch ``F.conv2d`` (the reference, default number of threads).
- TensorFlow ``tf.nn.conv2d`` on NHWC data prepared outside the timing.

conv2d returns a view with padded rows (see its docstring); the extra row
"+ np.ascontiguousarray" also times a compact copy of it, for information.

Each function is timed in its own block (warm-up calls, then R timed calls,
median), after a short pause so the previous library's worker threads have
gone idle: interleaving calls of libraries with spinning thread pools
measures their fight for the cores, not their speed. The blocks are repeated K
rounds and each function keeps its best (lowest) round median, which filters
out rounds disturbed by other processes on the machine.

The outputs are compared (np.allclose) before anything is timed; the script
exits with status 1 if they disagree. The last line says whether
utils.conv.conv2d meets the course's target: at most 3x the time of F.conv2d.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TARGET = 3.0  # utils.conv.conv2d may take at most TARGET x the time of F.conv2d
N, C, H, W, F_OUT, K = 32, 16, 32, 32, 32, 3


def median_ms(fn, repeat: int, warmup: int, pause: float) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` calls."""
    time.sleep(pause)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--repeat", type=int, default=30, help="timed calls per block (default 30)")
    add("--warmup", type=int, default=5, help="untimed calls before each block (default 5)")
    add("--rounds", type=int, default=7, help="rounds of blocks, best kept (default 7)")
    add("--pause", type=float, default=0.2, help="seconds of idle time before each block")
    add("--skip-naive", action="store_true", help="do not time conv2d_naive")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--repeat and --rounds must be >= 1, --warmup >= 0")

    import tensorflow as tf
    import torch
    import torch.nn.functional as F

    from utils import conv

    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((F_OUT, C, K, K)).astype(np.float32)
    b = rng.standard_normal(F_OUT).astype(np.float32)

    x_t, w_t, b_t = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
    x_tf = tf.constant(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))  # NHWC
    w_tf = tf.constant(np.ascontiguousarray(w.transpose(2, 3, 1, 0)))  # HWIO
    b_tf = tf.constant(b)

    def run_torch():
        return F.conv2d(x_t, w_t, b_t)

    def run_ours():
        return conv.conv2d(x, w, b)

    def run_ours_compact():
        return np.ascontiguousarray(conv.conv2d(x, w, b))

    def run_tf():
        return tf.nn.conv2d(x_tf, w_tf, strides=1, padding="VALID") + b_tf

    x_one = x[:1]

    def run_naive_one_image():
        return conv.conv2d_naive(x_one, w, b)

    # ---- correctness first -------------------------------------------------
    print(f"Problem: x {x.shape} float32, w {w.shape}, stride 1, padding 0 -> out (32, 32, 30, 30)")
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"tensorflow {tf.__version__}, {os.cpu_count()} CPUs")
    ref = run_torch().numpy()
    results = {
        "utils.conv.conv2d": run_ours(),
        "tf.nn.conv2d": np.transpose(run_tf().numpy(), (0, 3, 1, 2)),
    }
    naive_start = time.perf_counter()
    naive_out = None if args.skip_naive else run_naive_one_image()
    naive_ms = 1e3 * (time.perf_counter() - naive_start) * N
    ok = True
    for name, out in results.items():
        agree = out.shape == ref.shape and np.allclose(out, ref, rtol=1e-4, atol=1e-4)
        ok &= agree
        print(f"  {name:<24} vs F.conv2d: {'agree' if agree else 'DISAGREE'}"
              f" (max abs diff {np.max(np.abs(out - ref)) if out.shape == ref.shape else 'shape'})")
    if naive_out is not None:
        agree = np.allclose(naive_out, ref[:1], rtol=1e-4, atol=1e-4)
        ok &= agree
        verdict = "agree" if agree else "DISAGREE"
        print(f"  {'utils.conv.conv2d_naive':<24} vs F.conv2d: {verdict} (image 0)")
    if results["utils.conv.conv2d"].dtype != np.float32:
        print("  utils.conv.conv2d did not keep float32")
        ok = False
    if not ok:
        print("FAIL: outputs disagree; nothing timed.")
        return 1

    # ---- timing --------------------------------------------------------------
    timed = {
        "torch F.conv2d": run_torch,
        "utils.conv.conv2d": run_ours,
        "  + np.ascontiguousarray": run_ours_compact,
        "tf.nn.conv2d": run_tf,
    }
    best = {name: float("inf") for name in timed}
    for _ in range(args.rounds):
        for name, fn in timed.items():
            best[name] = min(best[name], median_ms(fn, args.repeat, args.warmup, args.pause))

    torch_ms = best["torch F.conv2d"]
    notes = {"  + np.ascontiguousarray": "(result copied to C-contiguous memory; for information)"}
    rows = [(name, ms, notes.get(name, "")) for name, ms in best.items()]
    if not args.skip_naive:
        rows.append(("utils.conv.conv2d_naive", naive_ms, f"(1 image timed once, x {N})"))
    print()
    print(f"median of {args.repeat} calls, best of {args.rounds} rounds")
    print(f"{'function':<26}{'median ms':>12}{'vs PyTorch':>12}")
    print("-" * 50)
    for name, ms, note in rows:
        print(f"{name:<26}{ms:>12.3f}{ms / torch_ms:>11.2f}x  {note}".rstrip())
    ratio = best["utils.conv.conv2d"] / torch_ms
    verdict = "MEETS" if ratio <= TARGET else "DOES NOT MEET"
    print()
    print(f"utils.conv.conv2d takes {ratio:.2f}x the time of F.conv2d: "
          f"{verdict} the <= {TARGET:g}x target.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
