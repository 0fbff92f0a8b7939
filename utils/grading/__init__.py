"""Checks that students and the autograder share.

A student runs the visible checks in their notebook (locally, on Colab, or
anywhere nbgrader is not installed); nbgrader runs the same checks, plus hidden
ones on inputs drawn from a seed only the grader knows. A check either passes
quietly or raises :class:`CheckError` whose message says what is wrong and what
was expected, in the words of the course:

    conv_forward: output shape is (2, 5, 5, 8), expected (2, 6, 6, 8): output
    height 5, expected 6: check the padding term of the output-size formula

Building blocks (the per-assignment checks live in ``utils.grading.a1`` ...):

- named checks: :func:`check_type`, :func:`check_shape`, :func:`check_dtype`,
  :func:`check_finite`, :func:`check_close` (values, with diagnostics);
- :class:`Mistake` and :func:`diagnose`: a wrong answer is compared with the
  outputs of the known mistakes, and the message names the likely one;
- :func:`case_rng` and :func:`grader_seed`: visible checks draw fresh random
  inputs on every run (hard-coding the visible examples fails); hidden checks
  draw them from the grader's secret seed (``CNN_COURSE_GRADER_SEED`` or the
  git-ignored file ``.grader_secret``);
- :func:`forbid`: using the reference (``utils.conv``, ``F.conv2d``,
  ``scipy.signal`` ...) instead of implementing it fails with a clear message.

Nothing here writes to stderr: nbgrader scores a test cell with stderr output as 0.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import importlib
import importlib.abc
import os
import pathlib
import sys
import traceback
import types
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

__all__ = [
    "CheckError",
    "ForbiddenCall",
    "Mistake",
    "check",
    "check_type",
    "check_shape",
    "check_dtype",
    "check_finite",
    "check_close",
    "diagnose",
    "grader_seed",
    "case_rng",
    "forbid",
    "passed",
    "to_numpy",
    "numerical_gradient",
    "graded",
    "student_traceback",
]

SEED_VARIABLE = "CNN_COURSE_GRADER_SEED"
SEED_FILE = pathlib.Path(__file__).resolve().parents[2] / ".grader_secret"


class CheckError(AssertionError):
    """A named check failed. ``str(error)`` is the message for the student."""

    def _render_traceback_(self) -> list[str]:
        # IPython and Jupyter show this instead of a traceback: the message is the
        # whole story, and a traceback would quote the test cell's lines (which
        # hold the hidden tests in nbgrader's autograded notebooks).
        return [f"{type(self).__name__}: {self}"]


# True while a hidden check runs: messages then name mistakes and shapes but
# never the reference's values (feedback must not reveal hidden answers).
_HIDDEN = contextvars.ContextVar("cnn_course_hidden_check", default=False)


def graded(check_function: Callable) -> Callable:
    """Decorator for ``check_<fn>(fn, ..., hidden=False)`` functions.

    While a hidden check runs, :func:`check_close` leaves reference values out
    of its messages. A failed check is re-raised without the chain of internal
    frames, so the student's traceback ends at the message.
    """

    name = check_function.__name__.removeprefix("check_")

    @functools.wraps(check_function)
    def wrapper(*args, hidden: bool = False, **kwargs):
        token = _HIDDEN.set(bool(hidden))
        try:
            return check_function(*args, hidden=hidden, **kwargs)
        except CheckError as error:
            raise type(error)(str(error)) from None
        except NotImplementedError:
            raise CheckError(
                f"{name}: not implemented yet: replace `raise NotImplementedError()` with your code"
            ) from None
        except Exception as error:  # raised by the student's code: keep its type and its lines
            with contextlib.suppress(AttributeError, TypeError):
                error._render_traceback_ = lambda error=error: student_traceback(error)
            raise
        finally:
            _HIDDEN.reset(token)

    return wrapper


_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent


def student_traceback(error: BaseException) -> list[str]:
    """The traceback of an error from the student's code, without the checks' own frames.

    Frames of ``utils.grading`` (and ``contextlib``) teach nothing; the frames
    above the check (the test cell) would quote the hidden tests.
    """
    internal = (str(_PACKAGE_DIR), str(pathlib.Path(contextlib.__file__).resolve()))
    frames = traceback.extract_tb(error.__traceback__)
    # Keep what runs below the last internal frame: the student's function and
    # what it calls. The test cell sits above the checks and is left out.
    last_internal = max((i for i, f in enumerate(frames)
                         if str(pathlib.Path(f.filename).resolve()).startswith(internal)), default=-1)
    frames = frames[last_internal + 1:]
    text = ["Traceback (most recent call last):\n", *traceback.format_list(frames),
            *traceback.format_exception_only(type(error), error)]
    return "".join(text).rstrip("\n").split("\n")


class ForbiddenCall(CheckError):
    """The student's function called a reference implementation it must replace."""


def check(condition: bool, function: str, message: str) -> None:
    """Raise :class:`CheckError` ``"<function>: <message>"`` unless ``condition``."""
    if not condition:
        raise CheckError(f"{function}: {message}")


def passed(function: str, checks: Sequence[str]) -> str:
    """The line a visible check prints when everything passed."""
    line = f"{function}: all {len(checks)} checks passed ({', '.join(checks)})"
    print(line)
    return line


# ---------------------------------------------------------------------------
# Named checks


def to_numpy(value) -> np.ndarray | None:
    """A plain ndarray copy of an ndarray or a (CPU or CUDA) torch tensor; else None."""
    if type(value) is np.ndarray:
        return value
    module = type(value).__module__
    if module.startswith("torch"):
        return value.detach().cpu().numpy()
    return None


def check_type(value, expected: type | tuple[type, ...], function: str, what: str = "output") -> None:
    """The value has one of the expected types (exact ndarray, not a subclass)."""
    expected = expected if isinstance(expected, tuple) else (expected,)
    ok = any((type(value) is t) if t is np.ndarray else isinstance(value, t) for t in expected)
    names = " or ".join(t.__name__ for t in expected)
    check(ok, function, f"{what} should be a {names}, got {type(value).__name__}")


def check_shape(
    value, expected: tuple[int, ...], function: str, what: str = "output", axes: Sequence[str] = ()
) -> None:
    """``value.shape == expected``; names the first wrong axis when ``axes`` labels them."""
    shape = tuple(value.shape)
    expected = tuple(expected)
    if shape == expected:
        return
    detail = ""
    if len(shape) == len(expected) and axes:
        for axis, got, want in zip(axes, shape, expected, strict=True):
            if got != want:
                detail = f": {axis} {got}, expected {want}"
                break
    elif len(shape) != len(expected):
        detail = f": {len(shape)} dimensions, expected {len(expected)}"
    raise CheckError(f"{function}: {what} shape is {shape}, expected {expected}{detail}")


def check_dtype(value, expected, function: str, what: str = "output") -> None:
    """The dtype is exactly the expected one (e.g. float32 stays float32)."""
    name = str(expected).removeprefix("torch.")
    try:
        name = np.dtype(expected).name
    except TypeError:
        pass  # a torch dtype
    got = str(value.dtype).removeprefix("torch.")
    check(got == name, function, f"{what} dtype is {got}, expected {name}")


def check_finite(value, function: str, what: str = "output") -> None:
    """No NaN or infinity anywhere."""
    array = to_numpy(value)
    array = np.asarray(value) if array is None else array
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    check(bad == 0, function, f"{what} has {bad} NaN or infinite values")


@dataclasses.dataclass(frozen=True)
class Mistake:
    """A known wrong way to implement a function, and what to tell the student.

    ``compute`` takes the same inputs as the reference and returns what the
    mistaken implementation would return (same shape or not).
    """

    name: str
    message: str
    compute: Callable


def _matches(actual: np.ndarray, candidate, rtol: float, atol: float) -> bool:
    candidate = to_numpy(candidate) if to_numpy(candidate) is not None else np.asarray(candidate)
    if candidate.shape != actual.shape:
        return False
    return bool(np.allclose(actual.astype(np.float64), candidate.astype(np.float64), rtol=rtol, atol=atol))


def diagnose(
    actual, inputs: dict, mistakes: Iterable[Mistake], rtol: float = 1e-5, atol: float = 1e-6
) -> Mistake | None:
    """The first known mistake whose output equals ``actual``, or None."""
    actual = to_numpy(actual) if to_numpy(actual) is not None else np.asarray(actual)
    for mistake in mistakes:
        try:
            candidate = mistake.compute(**inputs)
        except Exception:  # a mistake that cannot apply to these inputs
            continue
        if _matches(actual, candidate, rtol, atol):
            return mistake
    return None


def check_close(
    value,
    expected: np.ndarray,
    function: str,
    what: str = "output",
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    inputs: dict | None = None,
    mistakes: Iterable[Mistake] = (),
) -> None:
    """Values equal the float64 reference within tolerance.

    On a mismatch the message names a known mistake whose output equals the
    student's (when ``inputs`` and ``mistakes`` are given), else where the
    largest difference is.
    """
    array = to_numpy(value)
    array = np.asarray(value) if array is None else array
    expected = np.asarray(expected)
    if array.shape == expected.shape and np.allclose(
        array.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol
    ):
        return
    if inputs is not None:
        mistake = diagnose(array, inputs, mistakes, rtol=rtol, atol=atol)
        if mistake is not None:
            raise CheckError(f"{function}: {what} is wrong: {mistake.message}")
    if array.shape != expected.shape:
        raise CheckError(f"{function}: {what} shape is {array.shape}, expected {expected.shape}")
    differ = int(np.count_nonzero(~np.isclose(array, expected, rtol=rtol, atol=atol)))
    if _HIDDEN.get():
        raise CheckError(
            f"{function}: {what} values are wrong on a hidden test case "
            f"({differ} of {expected.size} values differ)"
        )
    difference = np.abs(array.astype(np.float64) - expected.astype(np.float64))
    index = np.unravel_index(int(np.nanargmax(np.where(np.isnan(difference), np.inf, difference))), difference.shape)
    raise CheckError(
        f"{function}: {what} values are wrong: at index {tuple(int(i) for i in index)} got "
        f"{array[index]:.6g}, expected {expected[index]:.6g} "
        f"({differ} of {expected.size} values differ)"
    )


def numerical_gradient(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-5):
    """Centered-difference gradient of ``sum(f(x) * dout)`` with respect to ``x``.

    ``x`` is float64 and modified in place while probing, then restored; the
    result has ``x``'s shape. This is cs231n's ``eval_numerical_gradient_array``:
    ``(f(x + h e_i) - f(x - h e_i)) . dout / (2h)`` for every entry ``i``.
    """
    if x.dtype != np.float64:
        raise TypeError(f"x must be float64 for a numerical gradient, got {x.dtype}")
    grad = np.zeros_like(x)
    flat, grad_flat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = np.asarray(f(x), dtype=np.float64)
        flat[i] = old - h
        minus = np.asarray(f(x), dtype=np.float64)
        flat[i] = old
        grad_flat[i] = np.sum((plus - minus) * dout) / (2 * h)
    return grad


# ---------------------------------------------------------------------------
# Seeds


def grader_seed() -> int | None:
    """The grader's secret seed: ``$CNN_COURSE_GRADER_SEED``, else ``.grader_secret``; None if neither."""
    text = os.environ.get(SEED_VARIABLE)
    if text is None and SEED_FILE.is_file():
        text = SEED_FILE.read_text().strip()
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"the grader seed must be an integer, got {text!r}") from None


def case_rng(hidden: bool, salt: str) -> np.random.Generator:
    """Random generator for one check's inputs.

    Without the grader's seed (a student's run), visible checks draw fresh
    entropy every time, so an answer hard-coded for one run fails the next,
    and hidden checks refuse to run. With the seed (grading), both are drawn
    from the secret seed mixed with ``salt`` (the check's name) and whether
    the check is hidden: grading is repeatable, and the inputs are unknown to
    students.
    """
    seed = grader_seed()
    if seed is None:
        if hidden:
            raise CheckError(
                "hidden checks run only while grading: the grader seed is missing "
                f"(set {SEED_VARIABLE} or create {SEED_FILE.name})"
            )
        return np.random.default_rng()
    tag = ("hidden:" if hidden else "visible:") + salt
    salt_words = np.frombuffer(hashlib.sha256(tag.encode()).digest()[:16], dtype=np.uint32)
    return np.random.default_rng([seed, *salt_words.tolist()])


# ---------------------------------------------------------------------------
# Forbidden references


def _resolve(dotted: str):
    """(owner object, attribute name, current value) for ``package.module.attr[.attr]``.

    Only modules that are already imported are looked at: importing a framework
    just to forbid it would cost seconds on every check. A target whose module
    is not imported yet raises :class:`LookupError` naming that module, and
    :func:`forbid` then blocks importing it while the check runs.
    """
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        owner = sys.modules.get(".".join(parts[:split]))
        if owner is None:
            continue
        for name in parts[split:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1], getattr(owner, parts[-1])
    raise LookupError(parts[0])


class _BlockImports(importlib.abc.MetaPathFinder):
    """Makes importing the given top-level packages fail with ForbiddenCall (while a check runs)."""

    def __init__(self, packages: set[str], function_name: str, hint: str):
        self.packages, self.function_name, self.hint = packages, function_name, hint

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.packages:
            raise ForbiddenCall(f"{self.function_name} imported {fullname} while it was checked: {self.hint}")
        return None


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names) | set(code.co_varnames) | set(code.co_freevars)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _referenced_objects(function: Callable) -> Iterator[tuple[str, object]]:
    """Global and closure values a function's code can reach by name."""
    code = getattr(function, "__code__", None)
    if code is None:
        return
    names = _code_names(code)
    for name in names:
        if name in function.__globals__:
            yield name, function.__globals__[name]
    for name, cell in zip(code.co_freevars, function.__closure__ or (), strict=False):
        with contextlib.suppress(ValueError):
            yield name, cell.cell_contents


@contextlib.contextmanager
def forbid(function: Callable, targets: Sequence[str], function_name: str, hint: str):
    """Run the block with ``targets`` (dotted names) turned into tripwires.

    Before the block, the function's reachable globals are scanned for the
    forbidden objects themselves (a reference bound under another name, or a
    forbidden module such as ``utils.conv``). During the block, each target
    raises :class:`ForbiddenCall` when called, also when reached through
    ``getattr`` or ``importlib``. The original objects are restored afterwards.
    """
    resolved, not_imported = [], set()
    for dotted in targets:
        try:
            resolved.append((dotted, *_resolve(dotted)))
        except LookupError as missing:
            not_imported.add(str(missing.args[0]))
        except AttributeError:
            continue  # not in this version of the library: it cannot be called either
    forbidden_ids = {id(value): dotted for dotted, _, _, value in resolved}
    forbidden_modules = {d.rsplit(".", 1)[0] for d in targets}
    for name, value in _referenced_objects(function):
        if id(value) in forbidden_ids:
            raise ForbiddenCall(
                f"{function_name} uses {forbidden_ids[id(value)]} (as {name!r}): {hint}"
            )
        # A whole course module (``import utils.conv as c``) is forbidden too.
        is_module = isinstance(value, types.ModuleType)
        if is_module and value.__name__ in forbidden_modules and value.__name__.startswith("utils"):
            raise ForbiddenCall(f"{function_name} uses the module {value.__name__} (as {name!r}): {hint}")

    def tripwire(dotted):
        def raise_forbidden(*args, **kwargs):
            raise ForbiddenCall(f"{function_name} called {dotted}: {hint}")

        return raise_forbidden

    patched = []
    blocker = _BlockImports(not_imported, function_name, hint) if not_imported else None
    try:
        for dotted, owner, attribute, value in resolved:
            setattr(owner, attribute, tripwire(dotted))
            patched.append((owner, attribute, value))
        if blocker is not None:
            sys.meta_path.insert(0, blocker)
        yield
    finally:
        if blocker is not None and blocker in sys.meta_path:
            sys.meta_path.remove(blocker)
        for owner, attribute, value in reversed(patched):
            setattr(owner, attribute, value)
