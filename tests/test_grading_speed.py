"""utils.grading.speed: what the CPU speed checks count is CPU time, exact to the microsecond; a timed call
(train_digits) costs the smaller of its wall-clock and CPU time."""

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
    this kernel): the speed checks' clock still measures each call of about 0.3 ms, none as 0 or as a tick."""
    code = (
        "import json, resource\n"
        "resource.setrlimit(resource.RLIMIT_CPU, (600, 600))\n"
        "from utils.grading import speed\n"
        "deltas = []\n"
        "for _ in range(20):\n"
        "    before = speed._cpu_seconds()\n"
        "    sum(range(20_000))\n"
        "    deltas.append(speed._cpu_seconds() - before)\n"
        "print(json.dumps(deltas))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    deltas = json.loads(done.stdout)
    assert len(deltas) == 20 and all(5e-5 < d < 3e-3 for d in deltas), deltas
    assert resource.getrlimit(resource.RLIMIT_CPU)[0] != 600  # the limit stayed in the child


def spin(seconds: float) -> None:
    """Work until this process has used ``seconds`` of CPU time (however long a busy machine makes that)."""
    start = speed._cpu_seconds()
    while speed._cpu_seconds() - start < seconds:
        pass


def test_a_timed_call_is_charged_its_work_not_its_waiting():
    _, waited = speed.timed_call(time.sleep, 0.3)
    _, worked = speed.timed_call(spin, 0.3)
    assert waited < 0.05 and 0.3 <= worked < 0.35, (waited, worked)


def test_a_duration_is_the_smaller_of_wall_clock_and_cpu_time():
    """Waiting (wall 3 s, CPU 1 s) costs the CPU time; two busy threads (wall 1 s, CPU 2 s) the wall clock."""
    assert speed.seconds_since((10.0, 5.0), wall=lambda: 13.0, cpu=lambda: 6.0) == 1.0
    assert speed.seconds_since((10.0, 5.0), wall=lambda: 11.0, cpu=lambda: 7.0) == 1.0
    assert speed.seconds_since((10.0, 5.0), wall=lambda: 12.5, cpu=lambda: 9.0) == 2.5
