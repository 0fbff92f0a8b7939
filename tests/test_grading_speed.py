"""utils.grading.speed: what the CPU speed checks count is CPU time, exact to the microsecond."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch

from utils.grading import speed

CPU = torch.device("cpu")


def test_time_spent_waiting_is_not_charged_on_the_cpu():
    """A call that waits 20 ms (as one does for a core on a busy machine) costs almost no CPU time."""
    timing = speed.measure(lambda: time.sleep(0.02), lambda: sum(range(20_000)), (), {}, CPU, repeats=3, rounds=1)
    assert len(timing.student_s) == 3 and len(timing.reference_s) == 3
    assert max(timing.student_s) < 0.005, timing.student_s
    assert min(timing.reference_s) > 0


def test_the_cpu_clock_is_exact_under_a_cpu_time_limit():
    """The sandbox sets RLIMIT_CPU, under which time.process_time only moves in scheduler ticks (4 ms on
    this kernel): the speed checks' clock still measures each 0.2-ms call, none as 0 or as a whole tick."""
    code = (
        "import json, resource, time\n"
        "resource.setrlimit(resource.RLIMIT_CPU, (600, 600))\n"
        "from utils.grading import speed\n"
        "deltas = []\n"
        "for _ in range(20):\n"
        "    before, start = speed._cpu_seconds(), time.perf_counter()\n"
        "    while time.perf_counter() - start < 2e-4:\n"
        "        pass\n"
        "    deltas.append(speed._cpu_seconds() - before)\n"
        "print(json.dumps(deltas))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    deltas = json.loads(done.stdout)
    assert len(deltas) == 20 and all(1e-4 < d < 2e-3 for d in deltas), deltas
    assert resource.getrlimit(resource.RLIMIT_CPU)[0] != 600  # the limit stayed in the child
