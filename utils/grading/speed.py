"""Timing a student's function against a library reference, in the same process and on the same input.

:func:`compare` is what a speed check calls (``check_conv2d_speed``: the student's
``conv2d`` against ``torch.nn.functional.conv2d``). In a student's kernel it
measures right there. Under the trusted verifier (:mod:`utils.grading.verify`)
the same call is answered from a measurement made in the sandboxed child, where
the student's code runs and the verifier's own process never does: the verifier
installs a hook with :func:`answered_by` for the length of its replay.

The measurement itself (:func:`measure`) holds the timer and the reference as
local values taken before any student code is called, and takes the median of
several calls of each, in turns, after warm-up; a slow function stops being
timed after ``budget_s`` seconds, and one whose first call took over
``give_up_s`` seconds is not called again.

On the CPU the clock is the process's CPU time (every thread of it), not the
wall clock: the checks run both functions on one thread, and CPU time leaves out
the time the process waits for a core. On a 2-core machine shared with three
busy processes, the wall-clock ratio of the same correct code ranged from 2.2x to
5.8x (1.9x idle), its CPU-time ratio from 2.8x to 3.1x: a verdict that depends
on the machine's load is not a verdict on the student's code. On a GPU the wall
clock, around ``torch.cuda.synchronize``, is what counts.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib
import statistics
import time
from collections.abc import Callable

__all__ = ["Timing", "compare", "measure", "resolve", "answered_by", "timed_call", "started", "seconds_since"]

_HOOK: contextvars.ContextVar[Callable | None] = contextvars.ContextVar("speed_hook", default=None)
_SECONDS_HOOK: contextvars.ContextVar[Callable | None] = contextvars.ContextVar("seconds_hook", default=None)
_CLOCK = time.perf_counter  # bound at import (in the verifier's child: before any student code runs)

try:
    import resource
except ImportError:  # Windows: no getrusage, and no sandbox either
    resource = None
_GETRUSAGE = getattr(resource, "getrusage", None)  # bound at import, like _CLOCK
_RUSAGE_SELF = getattr(resource, "RUSAGE_SELF", 0)


def _cpu_seconds(usage=_GETRUSAGE, who=_RUSAGE_SELF) -> float:
    """User plus system CPU seconds of every thread of this process, to the microsecond.

    Not ``time.process_time``: under the sandbox's ``RLIMIT_CPU`` the kernel serves that clock from the
    process's CPU timer, which advances only at scheduler ticks (4 ms here); ``getrusage`` sums the
    threads' exact run times.
    """
    if usage is None:
        return time.process_time()
    used = usage(who)
    return used.ru_utime + used.ru_stime


_CPU_CLOCK = _cpu_seconds  # the process's CPU time: what a CPU speed measurement counts


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per call of the student's function and of the reference (each list in call order)."""

    student_s: tuple[float, ...]
    reference_s: tuple[float, ...]

    @property
    def student_ms(self) -> float:
        return 1e3 * statistics.median(self.student_s)

    @property
    def reference_ms(self) -> float:
        return 1e3 * statistics.median(self.reference_s)

    @property
    def ratio(self) -> float:
        return self.student_ms / self.reference_ms

    def _replace_student(self, seconds: float) -> Timing:
        return Timing((seconds,), self.reference_s)


def resolve(dotted: str) -> Callable:
    """The object a dotted name such as ``torch.nn.functional.conv2d`` names (imports its module)."""
    module_name, _, attribute = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


@contextlib.contextmanager
def answered_by(hook: Callable, seconds: Callable | None = None):
    """Inside the block, :func:`compare` returns ``hook(function, reference, args, kwargs, device, params)``,
    and :func:`timed_call` takes the duration of a call from ``seconds(function)`` (None: its own clock)."""
    tokens = _HOOK.set(hook), _SECONDS_HOOK.set(seconds)
    try:
        yield
    finally:
        _HOOK.reset(tokens[0])
        _SECONDS_HOOK.reset(tokens[1])


def started(wall=_CLOCK, cpu=_CPU_CLOCK) -> tuple[float, float]:
    """The wall clock and the process's CPU time now: the start of a duration for :func:`seconds_since`."""
    return wall(), cpu()


def seconds_since(start: tuple[float, float], wall=_CLOCK, cpu=_CPU_CLOCK) -> float:
    """Seconds since ``start``: the smaller of wall-clock and CPU time.

    On a busy machine a single-threaded call waits for a core, which its wall clock counts and its CPU
    time does not; a multi-threaded call uses more CPU time than wall time. The smaller of the two is
    the call's own cost either way. (Work handed to another process is not counted; the sandbox's wall
    limit bounds it in the verifier.)
    """
    return min(wall() - start[0], cpu() - start[1])


def timed_call(function: Callable, *args, **kwargs) -> tuple[object, float]:
    """``(function(*args, **kwargs), seconds it took)``; under the verifier, the seconds it took in its child.

    If the call raises, the exception propagates (with no duration).
    """
    start = started()
    value = function(*args, **kwargs)
    seconds = seconds_since(start)
    hook = _SECONDS_HOOK.get()
    if hook is not None:
        reported = hook(function)
        seconds = seconds if reported is None else reported
    return value, seconds


def compare(function: Callable, reference: str, args: tuple, kwargs: dict, device, *, guard=contextlib.nullcontext,
            first_s: float | None = None, repeats: int = 5, rounds: int = 3, budget_s: float = 0.5,
            give_up_s: float = 2.0) -> Timing:
    """Time ``function(*args, **kwargs)`` against the reference named ``reference`` (same arguments).

    ``device``: a ``torch.device``; CUDA work is waited for (``torch.cuda.synchronize``) around every call.
    ``guard``: a context manager factory entered around the student's calls only (the forbidden-reference
    tripwires: the reference itself must run outside them). ``first_s``: how long a call the caller just
    made took; over ``give_up_s`` it is the only sample, and the function is not called again.
    """
    params = {"repeats": repeats, "rounds": rounds, "budget_s": budget_s, "give_up_s": give_up_s}
    hook = _HOOK.get()
    if hook is not None:
        return hook(function, reference, args, kwargs, device, params)
    if first_s is not None and first_s > give_up_s:
        return measure(None, resolve(reference), args, kwargs, device, **params)._replace_student(first_s)
    return measure(function, resolve(reference), args, kwargs, device, guard=guard, **params)


def measure(function: Callable, reference: Callable, args: tuple, kwargs: dict, device, *,
            guard=contextlib.nullcontext, repeats: int = 5, rounds: int = 3, budget_s: float = 0.5,
            give_up_s: float = 2.0) -> Timing:
    """The measurement behind :func:`compare`, with the reference given as the callable itself.

    ``function`` None: time the reference only (``student_s`` is then empty).
    """
    import torch

    clock = _CPU_CLOCK if device.type == "cpu" else _CLOCK
    synchronize = torch.cuda.synchronize if device.type == "cuda" else None

    def timed(fn) -> float:
        if synchronize is not None:
            synchronize(device)
        start = clock()
        fn(*args, **kwargs)
        if synchronize is not None:
            synchronize(device)
        return clock() - start

    if device.type == "cpu":
        # glibc serves large blocks with fresh mmap pages until a freed block raises its threshold (up to
        # 32 MB): without this, F.conv2d's scratch buffers make it up to 5x slower in a fresh process.
        block = torch.empty(31 * 2**20, dtype=torch.uint8)
        del block
    for _ in range(3):
        timed(reference)
    if function is None:
        return Timing((), tuple(timed(reference) for _ in range(repeats)))
    with guard():
        first = timed(function)  # also the student's warm-up
    if first > give_up_s:  # far too slow: one call tells enough (and keeps grading short)
        return Timing((first,), tuple(timed(reference) for _ in range(repeats)))
    reference_s, student_s, spent = [], [], first
    for _ in range(rounds):
        reference_s += [timed(reference) for _ in range(repeats)]
        with guard():
            for _ in range(repeats):
                student_s.append(timed(function))
                spent += student_s[-1]
                if spent > budget_s:
                    break
        if spent > budget_s:
            break
    return Timing(tuple(student_s), tuple(reference_s))
