"""Build the acceptance corpus of hostile submissions (DESIGN.md, "Hostile submissions the grader must survive").

    python tests/corpus/build.py

writes, from the correct example submission (alice), the partially wrong one (bob) and the released
notebook of a1_numpy_convolution, one student folder per entry::

    tests/corpus/<student>/a1_numpy_convolution/<files>
    tests/corpus/expected.json      the expected outcome of every entry

and removes the student folders it did not write. Output is deterministic: running it again gives the
same bytes. The fixtures are committed; this script is how they are regenerated (after a re-release of
the assignment or a change of alice's or bob's notebook).

**Never run these notebooks yourself**: they hold fork bombs, memory bombs, endless loops and code that
tries to read and change the grader's files. They are meant for the grader's sandbox only
(tests/test_grading_corpus.py); tests/corpus/conftest.py keeps pytest's nbval from collecting them.

Expected scores are derived by reasoning, not by grading: a hostile entry scores exactly what the same
code without the hostile part scores, the "honest" wrong answer. Hostile code sits in cells whose
functions no other graded function calls (conv_single_step, conv_output_size, conv_param_count,
pool_backward), because alice's conv_forward and conv_backward call her zero_pad. Where the current
pipeline does not reach the honest outcome, the entry says so under "known_bugs" (the test marks that check
as an expected failure that must be fixed, never as the right answer).
"""

from __future__ import annotations

import copy
import json
import pathlib
import pickle
import shutil
import textwrap

import nbformat
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
AID = "a1_numpy_convolution"
NAME = f"{AID}.ipynb"
ALICE = ROOT / "examples" / "submissions" / "alice" / AID / NAME
BOB = ROOT / "examples" / "submissions" / "bob" / AID / NAME
RELEASED = ROOT / "assignments" / AID / NAME

POINTS = {"zero_pad_tests": 1, "conv_single_step_tests": 1, "conv_output_size_tests": 1, "conv_forward_tests": 3,
          "conv_param_count_tests": 1, "pool_forward_tests": 2, "conv_backward_tests": 3, "pool_backward_tests": 2}
FULL = dict(POINTS)

# Files an entry writes when the grader wrongly runs or unpickles what it must not (checked by the test).
UNPICKLE_SENTINEL = "/tmp/cnn-course-corpus-c25-unpickled"
# The loopback ports the network entry (c20) tries; the test listens on one of them.
PORTS = (47260, 47270)

ENTRIES: dict[str, dict] = {}


# ---------------------------------------------------------------------------
# helpers


def load(path: pathlib.Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)  # nbformat 4.5: cell ids are kept


def gid(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def find(nb, grade_id: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if gid(c) == grade_id)


def cell(nb, grade_id: str):
    return nb.cells[find(nb, grade_id)]


def code(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


def replace(nb, grade_id: str, source: str) -> None:
    cell(nb, grade_id).source = code(source).rstrip("\n")


def append(nb, grade_id: str, source: str) -> None:
    target = cell(nb, grade_id)
    target.source = target.source.rstrip("\n") + "\n\n\n" + code(source).rstrip("\n")


def source_of(path: pathlib.Path, grade_id: str) -> str:
    return cell(load(path), grade_id).source


def scores(**zeroed) -> dict:
    """Full marks except the tests named (grade_id without "_tests") -> the points given."""
    out = dict(FULL)
    for name, value in zeroed.items():
        out[f"{name}_tests"] = value
    return out


ASPECTS = ("graded", "scores", "messages", "intake", "feedback")


def entry(student: str, kind: int, title: str, tests: dict, *, intake: str = "ok", messages: dict | None = None,
          intake_messages: list[str] | None = None, items: dict | None = None, known_bugs: dict | None = None,
          timing_dependent: tuple[str, ...] = (), notes: str = "", generated_by_test: bool = False) -> None:
    """One entry of expected.json.

    messages: test grade_id -> a fragment its failure message must hold (or a list of alternatives).
    known_bugs: aspect ("graded", "scores", "messages", "intake", "feedback") -> how the current pipeline
    misses the expectation; the test marks that check of this entry as an expected failure (strict, so that
    a fix shows), or a non-strict one for the aspects in timing_dependent (they depend on the machine's speed).
    """
    assert student not in ENTRIES, student
    assert set(tests) == set(POINTS), student
    assert set(known_bugs or {}) <= set(ASPECTS) and set(timing_dependent) <= set(known_bugs or {}), student
    ENTRIES[student] = {
        "kind": kind, "title": title, "tests": tests, "score": sum(tests.values()), "intake": intake,
        **({"messages": messages} if messages else {}),
        **({"intake_messages": intake_messages} if intake_messages else {}),
        **({"items": items} if items else {}),
        **({"known_bugs": known_bugs} if known_bugs else {}),
        **({"timing_dependent": list(timing_dependent)} if timing_dependent else {}),
        **({"notes": notes} if notes else {}),
        **({"generated_by_test": True} if generated_by_test else {}),
    }


BOMB_TIMING = " (when the bomb meets the cell time limit before the memory limit)"

# The feedback of a test cell that was interrupted (the cell time limit) or whose function raised
# KeyboardInterrupt shows IPython's traceback through the test cell, hidden tests included.
INTERRUPT_LEAK = ("feedback: the KeyboardInterrupt traceback of an interrupted test cell quotes the cell's lines, "
                  "hidden tests included (utils.grading.graded re-renders Exception only, and nbgrader's "
                  "ClearHiddenTests does not touch outputs); tools.course.check_feedback then makes grade() "
                  "raise PipelineError for the whole class")


OUT = HERE  # where main() writes; --out DIR writes elsewhere (the test compares a fresh build with the tree)


def folder(student: str) -> pathlib.Path:
    path = OUT / student / AID
    path.mkdir(parents=True, exist_ok=True)
    return path


def write(student: str, nb, name: str = NAME) -> None:
    nbformat.validate(nb)
    nbformat.write(nb, folder(student) / name)


def write_bytes(student: str, name: str, data: bytes) -> None:
    (folder(student) / name).write_bytes(data)


# ---------------------------------------------------------------------------
# code shared by several entries


BOB_CONV_FORWARD = source_of(BOB, "conv_forward")        # forgets the padding term of the output size
BOB_CONV_PARAM_COUNT = source_of(BOB, "conv_param_count")  # forgets the biases
BOB_POOL_FORWARD = source_of(BOB, "pool_forward")        # max and average swapped

WRONG_POOL_BACKWARD = """
def pool_backward(dout, x, f, stride, mode="max"):
    \"\"\"Backward pass of pool_forward(x, f, stride, mode): average mode forgets to divide by f*f.\"\"\"
    _, h_out, w_out, _ = dout.shape
    dx = np.zeros_like(x)
    for i in range(h_out):
        for j in range(w_out):
            rows = slice(i * stride, i * stride + f)
            cols = slice(j * stride, j * stride + f)
            g = dout[:, i, j, :][:, None, None, :]
            if mode == "max":
                windows = x[:, rows, cols, :]
                mask = windows == windows.max(axis=(1, 2), keepdims=True)
                dx[:, rows, cols, :] += mask * g
            else:
                dx[:, rows, cols, :] += g   # should be g / (f * f)
    return dx
"""

# ---------------------------------------------------------------------------
# the entries


def build_controls(alice, bob, released) -> None:
    write("c01_correct", alice)
    entry("c01_correct", 1, "correct control (alice's submission)", scores())

    write("c02_partially_wrong", bob)
    entry("c02_partially_wrong", 2, "partially wrong (bob's submission): only the affected tests fail, with a "
          "diagnostic",
          scores(conv_forward=0, conv_param_count=0, pool_forward=0, conv_backward=0),
          messages={"conv_forward_tests": "check the padding term of the output-size formula",
                    "conv_param_count_tests": "you forgot the biases",
                    "pool_forward_tests": "max and average are swapped",
                    "conv_backward_tests": "db is not summed over the batch"})

    write("c03_untouched_template", released)
    entry("c03_untouched_template", 3, "the released notebook handed in untouched",
          {g: 0 for g in POINTS}, messages={g: "not implemented yet" for g in POINTS})


def build_hangs(alice) -> None:
    nb = copy.deepcopy(alice)
    replace(nb, "conv_param_count", '''
        def conv_param_count(f, c_in, c_out):
            """Never returns: an endless loop in a graded function."""
            count = 0
            while True:
                count += 1
            return count
        ''')
    append(nb, "pool_backward", """
        # corpus c04: an endless loop at the top level of a solution cell; the cell never finishes
        _spins = 0
        while True:
            _spins += 1
        """)
    write("c04_infinite_loop", nb)
    entry("c04_infinite_loop", 4, "endless loop in a function (conv_param_count) and at the top level of a cell "
          "(pool_backward's, after the function)", scores(conv_param_count=0, pool_backward=0),
          messages={"conv_param_count_tests": "time limit", "pool_backward_tests": "time limit"},

          notes="The verifier loses a cell whose top level never finishes (its functions fail), although "
                "in a Jupyter session interrupted by hand pool_backward would be defined.")

    nb = copy.deepcopy(alice)
    append(nb, "conv_single_step", """
        # corpus c05: interrupts (Jupyter's stop button, nbclient's timeout) are ignored, then the cell never ends
        import signal
        import time

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while True:
            time.sleep(0.5)
        """)
    replace(nb, "conv_output_size", '''
        def conv_output_size(n, f, pad, stride):
            """Long native work that ignores interrupts."""
            import signal

            signal.signal(signal.SIGINT, signal.SIG_IGN)
            a = np.full((200, 200), 1e-3)
            while True:
                a = np.tanh(a @ a)   # NumPy in C: no Python bytecode between two iterations' worth of work
            return int((n + 2 * pad - f) / stride) + 1
        ''')
    write("c05_ignores_interrupts", nb)
    entry("c05_ignores_interrupts", 5, "SIGINT ignored, then endless sleep at the top level (conv_single_step's "
          "cell) and endless native NumPy work in conv_output_size", scores(conv_single_step=0, conv_output_size=0),
          messages={"conv_single_step_tests": "time limit", "conv_output_size_tests": "time limit"},
          notes="The kernel cannot be interrupted: every later cell of the notebook run times out, the run is "
                "killed at the per-notebook limit and the verifier decides.")


def build_memory(alice) -> None:
    nb = copy.deepcopy(alice)
    replace(nb, "conv_param_count", '''
        def conv_param_count(f, c_in, c_out):
            """A memory bomb: 1 GiB more, written (resident), at every step until memory runs out."""
            hog = []
            while True:
                hog.append(np.ones(2**27))
            return (f * f * c_in + 1) * c_out
        ''')
    append(nb, "conv_output_size", """
        # corpus c06: 8 TiB at once at the top level, after the function (which stays defined)
        _hog = np.ones(2**40)
        """)
    write("c06_memory_bomb", nb)
    entry("c06_memory_bomb", 6, "memory bomb in conv_param_count (1 GiB more, written, at every step) and one 8 TiB "
          "allocation at the top level of conv_output_size's cell",
          scores(conv_param_count=0), messages={"conv_param_count_tests": ["MemoryError", "time limit"]},
          notes="conv_output_size is defined before the top-level allocation fails, so its test passes (as in "
                "Jupyter). The function's bomb writes every page: on a slow machine it meets the time limit "
                "before the memory limit, either way a failure.")

    nb = copy.deepcopy(alice)
    replace(nb, "conv_output_size", '''
        def conv_output_size(n, f, pad, stride):
            """A GPU memory bomb (the CPU's memory where there is no GPU): 1 GiB more at every step."""
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            hog = []
            while True:
                hog.append(torch.ones(2**28, device=device))
            return int((n + 2 * pad - f) / stride) + 1
        ''')
    append(nb, "conv_param_count", """
        # corpus c07: one enormous allocation on the GPU (or the CPU) at the top level, after the function
        import torch

        _device = "cuda" if torch.cuda.is_available() else "cpu"
        _hog = torch.empty(2**40, device=_device)
        """)
    write("c07_gpu_memory_bomb", nb)
    entry("c07_gpu_memory_bomb", 7, "GPU memory bomb (torch on cuda if available, else the CPU) in conv_output_size "
          "and a 4 TiB allocation at the top level of conv_param_count's cell", scores(conv_output_size=0),
          messages={"conv_output_size_tests": ["allocate", "time limit", "torch is off limits"]},
          notes="Without a GPU this is a memory bomb through PyTorch's CPU allocator. In the verifier's child "
                "torch cannot be imported at all (a reference implementation for a1).")


def build_exits(alice) -> None:
    nb = copy.deepcopy(alice)
    replace(nb, "conv_output_size", '''
        def conv_output_size(n, f, pad, stride):
            """Kills its own process."""
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
            return int((n + 2 * pad - f) / stride) + 1
        ''')
    replace(nb, "conv_param_count", '''
        def conv_param_count(f, c_in, c_out):
            """Ends its process at once, without cleanup."""
            import os

            os._exit(3)
        ''')
    write("c08_self_kill", nb)
    entry("c08_self_kill", 8, "os.kill(getpid(), SIGKILL) in conv_output_size, os._exit in conv_param_count",
          scores(conv_output_size=0, conv_param_count=0),
          messages={"conv_output_size_tests": "killed", "conv_param_count_tests": "exited with code 3"})

    nb = copy.deepcopy(alice)
    replace(nb, "conv_single_step", '''
        def conv_single_step(a_slice, w, b):
            """Raises SystemExit."""
            raise SystemExit("done")
        ''')
    replace(nb, "conv_output_size", '''
        def conv_output_size(n, f, pad, stride):
            """Calls sys.exit."""
            import sys

            sys.exit(0)
        ''')
    replace(nb, "conv_param_count", '''
        def conv_param_count(f, c_in, c_out):
            """Raises KeyboardInterrupt."""
            raise KeyboardInterrupt
        ''')
    write("c09_sys_exit", nb)
    entry("c09_sys_exit", 9, "SystemExit, sys.exit() and KeyboardInterrupt inside graded functions",
          scores(conv_single_step=0, conv_output_size=0, conv_param_count=0),
          messages={"conv_single_step_tests": "SystemExit", "conv_output_size_tests": "SystemExit",
                    "conv_param_count_tests": "KeyboardInterrupt"})


def build_processes(alice) -> None:
    nb = copy.deepcopy(alice)
    replace(nb, "conv_param_count", '''
        def conv_param_count(f, c_in, c_out):
            """A fork bomb: every process forks again until the process limit; the copies sleep, the caller returns."""
            import os
            import time

            me = os.getpid()
            for _ in range(100_000):
                try:
                    os.fork()
                except OSError:
                    break
            if os.getpid() != me:
                time.sleep(1000)
                os._exit(0)
            return (f * f * c_in + 1) * c_out
        ''')
    append(nb, "conv_output_size", """
        # corpus c10: background processes left behind: a new session and a double-forked daemon
        import os as _os
        import subprocess as _subprocess
        import time as _time

        _sleeper = _subprocess.Popen(["sleep", "1000"], start_new_session=True,
                                     stdout=_subprocess.DEVNULL, stderr=_subprocess.DEVNULL)
        if _os.fork() == 0:
            _os.setsid()
            if _os.fork() == 0:
                _time.sleep(1000)
            _os._exit(0)
        """)
    write("c10_fork_bomb", nb)
    entry("c10_fork_bomb", 10, "fork bomb bounded by the process limit in conv_param_count (which then returns the "
          "right answer) and processes left behind (Popen sleep with start_new_session, double fork)", scores(),
          notes="Every function returns the right answer: full marks, and no process may outlive the grading.")


FLOOD_IMAGES = """
# corpus c11: one huge image, many images under the per-output cap, many HTML outputs, a script
import io as _io

import matplotlib.pyplot as _plt
from IPython.display import HTML as _HTML
from IPython.display import Image as _Image
from IPython.display import display as _display

_rng = np.random.default_rng(0)
_fig = _plt.figure(figsize=(20, 20), dpi=100)
_plt.imshow(_rng.random((2000, 2000, 3)))
_plt.axis("off")
_png = _io.BytesIO()
_fig.savefig(_png, format="png")
_plt.close(_fig)
_display(_Image(_png.getvalue()))                          # about 12 MB of PNG

_fig = _plt.figure(figsize=(2.5, 2.5), dpi=100)
_plt.imshow(_rng.random((250, 250, 3)))
_small = _io.BytesIO()
_fig.savefig(_small, format="png")
_plt.close(_fig)
for _k in range(60):
    _display(_Image(_small.getvalue()))                    # 60 images of about 190 kB: under the cap one by one
for _k in range(1000):
    _display(_HTML("<pre>" + "y" * 15_000 + "</pre>"))     # 1000 outputs of 15 kB: under the cap one by one
_display(_HTML("<script>window.cnnCorpusXss = 1</script><b>c11 html</b>"))
"""


def build_floods(alice) -> None:
    nb = copy.deepcopy(alice)
    append(nb, "conv_single_step", """
        # corpus c11: a million lines
        for _i in range(10**6):
            print(_i)
        """)
    append(nb, "conv_output_size", """
        # corpus c11: one line of 50 MB
        print("x" * 50_000_000)
        """)
    replace(nb, "conv_param_count", '''
        def conv_param_count(f, c_in, c_out):
            """Right, and chatty: 2000 lines on stdout and 100 kB on stderr at every call."""
            import sys

            for i in range(2000):
                print("counting", i)
            sys.stderr.write("e" * 100_000 + "\\n")
            return (f * f * c_in + 1) * c_out
        ''')
    append(nb, "conv_param_count", FLOOD_IMAGES)
    write("c11_output_flood", nb)
    entry("c11_output_flood", 11, "output flood: 10**6 lines, one 50 MB line, a 12 MB image, 60 images and 1000 HTML "
          "outputs each under the per-output cap, stdout and stderr floods from a graded function", scores(),

          notes="Full marks; the feedback must stay under the size cap and hold no script of the student's.")


def build_subversion(alice) -> None:
    nb = copy.deepcopy(alice)
    replace(nb, "conv_param_count", BOB_CONV_PARAM_COUNT + """


# corpus c12: no traceback is ever shown again, and every failed check is swallowed
try:
    _shell = get_ipython()
except NameError:  # not in IPython: nothing to hide
    _shell = None
if _shell is not None:
    _shell.showtraceback = lambda *args, **kwargs: None
    _shell.showsyntaxerror = lambda *args, **kwargs: None
    _shell.set_custom_exc((AssertionError, Exception), lambda shell, etype, evalue, tb, tb_offset=None: None)
""")
    write("c12_traceback_suppression", nb)
    entry("c12_traceback_suppression", 12, "wrong conv_param_count (bob's: no biases) with showtraceback replaced and "
          "set_custom_exc swallowing AssertionError/CheckError", scores(conv_param_count=0),
          messages={"conv_param_count_tests": "you forgot the biases"},
          notes="Scores exactly like bob's conv_param_count without the suppression.")

    nb = copy.deepcopy(alice)
    replace(nb, "conv_forward", BOB_CONV_FORWARD + """


# corpus c13: every comparison and every check says yes
import numpy.testing

import utils.grading
import utils.grading.a1

np.allclose = lambda *args, **kwargs: True
np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(a, b).shape, dtype=bool)
numpy.testing.assert_allclose = lambda *args, **kwargs: None
numpy.testing.assert_array_almost_equal = lambda *args, **kwargs: None
utils.grading.check_close = lambda *args, **kwargs: None
utils.grading.a1.check_close = lambda *args, **kwargs: None
utils.grading.a1.check_conv_forward = lambda *args, **kwargs: None
try:
    import torch

    torch.allclose = lambda *args, **kwargs: True
except ImportError:
    pass
""")
    write("c13_monkeypatch", nb)
    entry("c13_monkeypatch", 13, "wrong conv_forward (bob's: no padding term) with np.allclose, np.isclose, "
          "np.testing, torch.allclose, utils.grading.check_close and utils.grading.a1.check_conv_forward patched",
          scores(conv_forward=0), messages={"conv_forward_tests": "check the padding term"},
          notes="Scores exactly like bob's conv_forward without the patches (c02).")

    nb = copy.deepcopy(alice)
    replace(nb, "conv_single_step", '''
        def conv_single_step(a_slice, w, b):
            """Right value, but it overwrites its input a_slice (an honest failure: "it modified its input")."""
            z = float(np.sum(a_slice * w) + b)
            a_slice[...] = 0.0
            return z


        # corpus c13b: the verifier's child compares the inputs before and after a call with np.array_equal
        np.array_equal = lambda *args, **kwargs: True
        ''')
    write("c13b_patch_input_check", nb)
    entry("c13b_patch_input_check", 13, "conv_single_step modifies its input; np.array_equal patched at the top "
          "level, which the verifier's child uses to detect modified inputs", scores(conv_single_step=0),
          messages={"conv_single_step_tests": "modified its input"})

    nb = copy.deepcopy(alice)
    for name in POINTS:
        function = name.removesuffix("_tests")
        cell(nb, function).source = source_of(RELEASED, function)
    append(nb, "conv_param_count", FORGE)
    write("c13c_forged_verifier_log", nb)
    entry("c13c_forged_verifier_log", 13, "the untouched template, plus top-level code in conv_param_count's cell "
          "that, when it runs in the verifier's child, reads job.json, answers every call with the course's "
          "references (utils.conv, forbidden) and appends forged 'result' events to results.jsonl, then os._exit",
          {g: 0 for g in POINTS}, messages={g: "not implemented yet" for g in POINTS})

    nb = copy.deepcopy(alice)
    replace(nb, "pool_backward", WRONG_POOL_BACKWARD + """

# corpus c14: later cells are rewritten before they run: no line that calls a check survives
import ast as _ast
import sys as _sys

try:
    _shell = get_ipython()
except NameError:
    _shell = None
if _shell is not None:
    def _drop_checks(lines):
        return [line for line in lines if "checks." not in line]

    class _NoChecks(_ast.NodeTransformer):
        def visit_Expr(self, node):
            if isinstance(node.value, _ast.Call) and "check" in _ast.unparse(node.value.func):
                return _ast.Pass()
            return node

    _shell.input_transformers_cleanup.append(_drop_checks)
    _shell.ast_transformers.append(_NoChecks())


def _tracer(frame, event, arg):  # a global trace function (sys.settrace) on top
    return None


_sys.settrace(_tracer)
""")
    write("c14_input_transformers", nb)
    entry("c14_input_transformers", 14, "wrong pool_backward (average mode not divided by f*f) with an input "
          "transformer deleting `checks.` lines, an AST transformer removing check calls, and sys.settrace",
          scores(pool_backward=0), messages={"pool_backward_tests": "pool_backward"})


FORGE = """
# corpus c13c: forge the verifier's log. In the verifier's child (python -m utils.grading._verify_child JOB OUT)
# this answers every call the checks will make, writes the answers where the child writes its own,
# and ends the process before any graded function runs. In the notebook it does nothing.
import sys as _sys

if len(_sys.argv) == 3 and _sys.argv[0].endswith("_verify_child.py"):
    import os as _os
    import pathlib as _pathlib

    import utils.conv as _C
    from utils.grading import transport as _transport

    def _t(a):
        return a.transpose(0, 3, 1, 2)

    def _back(a):
        return a.transpose(0, 2, 3, 1)

    def _conv_backward(dout, x, w, b, stride, pad):
        dx, dw, db = _C.conv2d_backward(_t(dout), _t(x), w.transpose(3, 2, 0, 1), stride, pad)
        return _back(dx), dw.transpose(2, 3, 1, 0), db

    def _pool_backward(dout, x, f, stride, mode="max"):
        if mode == "max":
            return _back(_C.max_pool2d_backward(_t(dout), _t(x), f, stride))
        dx = np.zeros_like(x)
        for i in range(dout.shape[1]):
            for j in range(dout.shape[2]):
                dx[:, i * stride:i * stride + f, j * stride:j * stride + f, :] += dout[:, i:i + 1, j:j + 1, :] / (f * f)
        return dx

    _REFERENCE = {
        "zero_pad": lambda x, pad: np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))),
        "conv_single_step": lambda a_slice, w, b: float(np.sum(a_slice * w) + b),
        "conv_output_size": lambda n, f, pad, stride: (n + 2 * pad - f) // stride + 1,
        "conv_forward": lambda x, w, b, stride, pad: _back(_C.conv2d(_t(x), w.transpose(3, 2, 0, 1), b, stride, pad)),
        "conv_param_count": lambda f, c_in, c_out: (f * f * c_in + 1) * c_out,
        "pool_forward": lambda x, f, stride, mode="max": _back(
            (_C.max_pool2d if mode == "max" else _C.avg_pool2d)(_t(x), f, stride)),
        "conv_backward": _conv_backward,
        "pool_backward": _pool_backward,
    }
    _job_dir, _out_dir = _pathlib.Path(_sys.argv[1]), _pathlib.Path(_sys.argv[2])
    _job = _transport.loads((_job_dir / "job.json").read_text(encoding="utf-8"))
    with open(_out_dir / "results.jsonl", "a", encoding="utf-8") as _log:
        for _call in _job["calls"]:
            _args = [_transport.decode(r, _job_dir) for r in _call["args"]]
            _kwargs = {k: _transport.decode(r, _job_dir) for k, r in _call["kwargs"].items()}
            _value = _REFERENCE[_call["function"]](*_args, **_kwargs)
            _log.write(_transport.dumps({"event": "start", "id": _call["id"]}) + "\\n")
            _log.write(_transport.dumps({"event": "result", "id": _call["id"], "modified": [],
                                         "value": _transport.encode(_value, _out_dir, "forged" + _call["id"])}) + "\\n")
    _os._exit(0)
"""


def build_rigged(alice) -> None:
    nb = copy.deepcopy(alice)
    replace(nb, "conv_single_step", '''
        class _LiarFloat(float):
            """Off by one, and equal to everything."""

            def __eq__(self, other):
                return True

            def __ne__(self, other):
                return False

            __hash__ = float.__hash__


        def conv_single_step(a_slice, w, b):
            return _LiarFloat(float(np.sum(a_slice * w) + b) + 1.0)
        ''')
    replace(nb, "conv_output_size", '''
        class _LiarInt(int):
            """Off by one, and equal to everything."""

            def __eq__(self, other):
                return True

            def __ne__(self, other):
                return False

            __hash__ = int.__hash__


        def conv_output_size(n, f, pad, stride):
            return _LiarInt((n + 2 * pad - f) // stride + 2)
        ''')
    replace(nb, "conv_param_count", '''
        def conv_param_count(f, c_in, c_out):
            return float("nan")
        ''')
    cell(nb, "conv_forward").source = cell(nb, "conv_forward").source.replace(
        "    return out", "    return out.astype(np.float32)   # right values, wrong dtype")
    replace(nb, "pool_forward", '''
        def pool_forward(x, f, stride, mode="max"):
            n, h, w, c = x.shape
            return np.full((n, (h - f) // stride + 1, (w - f) // stride + 1, c), np.nan)   # right shape, NaN values
        ''')
    replace(nb, "pool_backward", '''
        class _AlwaysEqual(np.ndarray):
            """An ndarray subclass whose comparisons all say yes."""

            def __eq__(self, other):
                return np.ones(self.shape, dtype=bool)

            def __ne__(self, other):
                return np.zeros(self.shape, dtype=bool)

            def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
                return np.zeros(self.shape) if ufunc in (np.subtract, np.absolute) else NotImplemented


        def pool_backward(dout, x, f, stride, mode="max"):
            return np.zeros_like(x).view(_AlwaysEqual)
        ''')
    write("c15_rigged_returns", nb)
    entry("c15_rigged_returns", 15, "rigged return values: float and int subclasses equal to everything (wrong "
          "values), NaN, float32 instead of float64, NaN array, an ndarray subclass whose comparisons say yes",
          scores(conv_single_step=0, conv_output_size=0, conv_param_count=0, conv_forward=0, pool_forward=0,
                 pool_backward=0),
          messages={"conv_single_step_tests": "conv_single_step", "conv_output_size_tests": "conv_output_size",
                    "conv_param_count_tests": "conv_param_count", "conv_forward_tests": "dtype",
                    "pool_forward_tests": "pool_forward", "pool_backward_tests": "pool_backward"})

    nb = copy.deepcopy(alice)
    replace(nb, "conv_forward", '''
        def conv_forward(x, w, b, stride, pad):
            """The notebook's worked example, hard-coded; zeros otherwise."""
            if x.shape == (1, 4, 4, 1) and w.shape == (3, 3, 1, 1):
                return np.array([[12.0, 12.0], [10.0, 17.0]]).reshape(1, 2, 2, 1)
            return np.zeros((x.shape[0], 1, 1, w.shape[3]))
        ''')
    replace(nb, "conv_param_count", '''
        def conv_param_count(f, c_in, c_out):
            """The two examples of the notebook's text, hard-coded."""
            return {(3, 3, 10): 280, (5, 3, 6): 456}.get((f, c_in, c_out), 0)
        ''')
    write("c16_hard_coded", nb)
    entry("c16_hard_coded", 16, "answers hard-coded for the notebook's visible examples (the worked "
          "[[12, 12], [10, 17]] and 280/456 parameters)", scores(conv_forward=0, conv_param_count=0),
          messages={"conv_forward_tests": "conv_forward", "conv_param_count_tests": "conv_param_count"})


def build_forbidden(alice) -> None:
    nb = copy.deepcopy(alice)
    replace(nb, "conv_forward", '''
        import utils.conv


        def conv_forward(x, w, b, stride, pad):
            """The course's reference, called directly."""
            out = utils.conv.conv2d(x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), b, stride, pad)
            return out.transpose(0, 2, 3, 1)
        ''')
    replace(nb, "conv_output_size", '''
        import importlib


        def conv_output_size(n, f, pad, stride):
            """The course's reference, through importlib."""
            return importlib.import_module("utils.shapes").conv_output_size(n, f, stride, pad)
        ''')
    replace(nb, "pool_forward", '''
        import utils.conv as _module


        def pool_forward(x, f, stride, mode="max"):
            """The course's reference, through getattr with a computed name."""
            reference = getattr(_module, ("max" if mode == "max" else "avg") + "_pool2d")
            return reference(x.transpose(0, 3, 1, 2), f, stride).transpose(0, 2, 3, 1)
        ''')
    write("c17_forbidden_calls", nb)
    entry("c17_forbidden_calls", 17, "forbidden references: utils.conv.conv2d called directly, utils.shapes through "
          "importlib, utils.conv pooling through getattr with a computed name (all give right values)",
          scores(conv_forward=0, conv_output_size=0, pool_forward=0),
          messages={"conv_forward_tests": "utils.conv", "conv_output_size_tests": "importlib",
                    "pool_forward_tests": "getattr"})

    nb = copy.deepcopy(alice)
    replace(nb, "conv_forward", '''
        import utils.conv


        def conv_forward(x, w, b, stride, pad, _reference=utils.conv.conv2d):
            """The reference, kept in a default argument (bound before the tripwires are set)."""
            return _reference(x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), b, stride, pad).transpose(0, 2, 3, 1)
        ''')
    replace(nb, "pool_forward", '''
        import utils.conv

        _REFERENCES = {"max": utils.conv.max_pool2d, "average": utils.conv.avg_pool2d}   # kept in a dict


        def pool_forward(x, f, stride, mode="max"):
            return _REFERENCES[mode](x.transpose(0, 3, 1, 2), f, stride).transpose(0, 2, 3, 1)
        ''')
    replace(nb, "conv_output_size", '''
        from utils.conv import _out_size   # a private helper of the reference, not on the list


        def conv_output_size(n, f, pad, stride):
            return _out_size(n, f, stride, pad, 1)
        ''')
    replace(nb, "conv_param_count", '''
        import utils.shapes


        class _Counter:
            count = staticmethod(utils.shapes.conv_params)   # kept in a class attribute


        def conv_param_count(f, c_in, c_out):
            return _Counter.count(f, c_in, c_out)
        ''')
    replace(nb, "conv_backward", '''
        import utils.grading.a1

        utils.grading.a1.forbidden_targets = lambda: []   # no tripwires at all from now on


        def conv_backward(dout, x, w, b, stride, pad):
            import utils.conv as reference

            t = (0, 3, 1, 2)
            dx, dw, db = reference.conv2d_backward(dout.transpose(t), x.transpose(t), w.transpose(3, 2, 0, 1),
                                                   stride, pad)
            return dx.transpose(0, 2, 3, 1), dw.transpose(2, 3, 1, 0), db
        ''')
    write("c17b_forbidden_evasions", nb)
    entry("c17b_forbidden_evasions", 17, "forbidden references reached around the tripwires: a default argument "
          "(conv_forward), a dict (pool_forward), a private helper utils.conv._out_size (conv_output_size), a class "
          "attribute (conv_param_count), and utils.grading.a1.forbidden_targets patched to [] (conv_backward)",
          scores(conv_forward=0, pool_forward=0, conv_output_size=0, conv_param_count=0, conv_backward=0))


READ_SECRETS = """
# corpus c18: try to read what a student must never see, and print what was read
import os as _os
import pathlib as _pathlib

import utils as _utils

_ROOT = _pathlib.Path(_utils.__file__).resolve().parents[1]


def _peek(path, size=160):
    path = _pathlib.Path(path)
    try:
        if path.is_dir():
            names = sorted(p.name for p in path.iterdir())
            return f"LEAKED folder of {len(names)}: {', '.join(names[:12])}" if names else "empty folder"
        data = path.read_bytes()[:size]
        return f"LEAKED {len(data)} bytes: {data!r}" if data else "empty file"
    except Exception as error:
        return type(error).__name__


_targets = [
    "solutions/a1_numpy_convolution/a1_numpy_convolution.ipynb",
    "grading/gradebook.db",
    _ROOT / "solutions/a1_numpy_convolution/a1_numpy_convolution.ipynb",
    _ROOT / "solutions",
    _ROOT / "grading/gradebook.db",
    _ROOT / "grading",
    _ROOT / ".grader_secret",
    _ROOT / "examples/submissions/alice/a1_numpy_convolution/a1_numpy_convolution.ipynb",
    _ROOT / "tests/corpus/expected.json",
    _ROOT / ".git/config",
]
for _hidden in _os.environ.get("CNN_COURSE_KERNEL_HIDDEN", "").split(_os.pathsep):
    if _hidden:
        _targets += [_pathlib.Path(_hidden) / name for name in (
            "gradebook.db", "submitted", "submitted/c01_correct/a1_numpy_convolution/a1_numpy_convolution.ipynb",
            "release", "autograded")]
for _target in _targets:
    print("c18 read", _target, "->", _peek(_target))
print("c18 environment:", dict(_os.environ))
_seeds = {}
for _pid in _os.listdir("/proc"):
    if _pid.isdigit():
        try:
            _environ = _pathlib.Path(f"/proc/{_pid}/environ").read_bytes().split(b"\\0")
        except OSError:
            continue
        _seeds.update({_pid: v.decode() for v in _environ if v.startswith(b"CNN_COURSE_GRADER_SEED=")})
print("c18 grader seeds in /proc:", _seeds)
"""

PRINT_HIDDEN_TESTS = """
# corpus c18b: IPython's input history holds every cell run so far, the test cells (hidden tests included)
try:
    _history = In
except NameError:
    _history = []
for _source in _history:
    if "checks." in _source:
        print(_source)
"""


def build_reads_writes(alice) -> None:
    nb = copy.deepcopy(alice)
    append(nb, "conv_output_size", READ_SECRETS)
    write("c18_reads_secrets", nb)
    entry("c18_reads_secrets", 18, "reads and prints solutions/, the gradebook (relative and absolute paths), the "
          "grading state of the class (from $CNN_COURSE_KERNEL_HIDDEN), other students' files, .grader_secret, "
          "tests/, .git, the environment and every /proc/*/environ", scores(),
          notes="Full marks; nothing read may be a secret: no 'LEAKED' in its outputs, no grader seed.")

    nb = copy.deepcopy(alice)
    append(nb, "pool_backward", PRINT_HIDDEN_TESTS)
    replace(nb, "conv_param_count", '''
        def conv_param_count(f, c_in, c_out):
            """Right, and prints the source of the cell that called it (the test cell, hidden tests included)."""
            import linecache
            import sys

            frame = sys._getframe(1)
            while frame is not None:
                name = frame.f_code.co_filename
                if "ipykernel" in name or name.startswith("<ipython"):
                    print("".join(linecache.getlines(name)))
                frame = frame.f_back
            return (f * f * c_in + 1) * c_out
        ''')
    write("c18b_prints_hidden_tests", nb)
    entry("c18b_prints_hidden_tests", 18, "prints the hidden tests: IPython's input history `In` at the top level of "
          "pool_backward's cell, and the calling test cell's source (linecache) from conv_param_count",
          scores(conv_param_count=0), messages={"conv_param_count_tests": "sys._getframe"[3:]},
          notes="13/14: conv_param_count reaches its caller's frame with sys._getframe, which the verifier's static "
                "scan refuses (private attributes can reach the references); the feedback must not show the hidden "
                "tests, and the class must still be graded.")

    nb = copy.deepcopy(alice)
    replace(nb, "conv_param_count", '''
        def conv_param_count(f, c_in, c_out):
            """Returns text that looks like a hidden test's marker: the check's message quotes it."""
            return "### BEGIN HIDDEN TESTS: checks.check_conv_param_count(conv_param_count, hidden=True)"
        ''')
    write("c18c_fake_hidden_marker", nb)
    entry("c18c_fake_hidden_marker", 18, "conv_param_count returns the text of a hidden-test marker (no secret at "
          "all): the solution cell's source holds 'BEGIN HIDDEN TESTS', and the failure message, which quotes the "
          "returned value, lands in the feedback", scores(conv_param_count=0),
          messages={"conv_param_count_tests": "conv_param_count"}, intake="repaired",
          intake_messages=["nbgrader's marker of hidden tests"],
          notes="13/14 (a str is not an int); the marker in the solution cell is defused at intake (it would "
                "make nbgrader refuse the feedback); the class must still be graded.")

    nb = copy.deepcopy(alice)
    replace(nb, "conv_param_count", '''
        def conv_param_count(f, c_in, c_out):
            """Right, after trying to leave a file in the repository at every call."""
            import pathlib

            import utils

            try:
                (pathlib.Path(utils.__file__).resolve().parents[1] / "c19-was-here-call.txt").write_text("c19\\n")
            except OSError:
                pass
            return (f * f * c_in + 1) * c_out
        ''')
    append(nb, "conv_param_count", WRITE_FILES)
    write("c19_writes_files", nb)
    entry("c19_writes_files", 19, "tries to delete the class's gradebook and other students' submissions, to open "
          "the repository's files for writing (README, utils/grading, tools, assignments, solutions, .grader_secret, "
          "the default gradebook) by relative and absolute paths, and to create files in the repository and in "
          "the virtual environment", scores(),
          notes="Full marks; every attempt must fail: no 'SUCCEEDED' in its outputs, no file changed.")

    nb = copy.deepcopy(alice)
    append(nb, "conv_param_count", """
        # corpus c19b: delete the verifier child's log (its working folder) and carry on
        import os as _os

        try:
            _os.remove("results.jsonl")
        except OSError:
            pass
        """)
    write("c19b_deletes_verifier_log", nb)
    entry("c19b_deletes_verifier_log", 19, "alice, plus top-level code in conv_param_count's cell that deletes "
          "results.jsonl from its working folder (in the verifier's child: the child's own log)",
          scores(),
          notes="Full marks: the child reports through a pipe, so there is no log to delete.")


WRITE_FILES = """


# corpus c19: try to change files outside the scratch space, and report what worked. Every attempt on the
# repository is harmless if it works (it opens existing files for writing without changing a byte, or
# creates new files named c19-was-here); the class's grading state (from $CNN_COURSE_KERNEL_HIDDEN) is
# attacked for real: the test's state is a temporary copy.
import os as _os
import pathlib as _pathlib
import shutil as _shutil
import stat as _stat
import sys as _sys

import utils as _utils

_ROOT = _pathlib.Path(_utils.__file__).resolve().parents[1]
_STATES = [_pathlib.Path(p) for p in _os.environ.get("CNN_COURSE_KERNEL_HIDDEN", "").split(_os.pathsep) if p]


def _try(what, action):
    try:
        action()
        print(f"c19 {what}: SUCCEEDED")
    except Exception as error:
        print(f"c19 {what}: refused ({type(error).__name__})")


def _reopen(path):
    with open(path, "r+b") as handle:
        if _stat.S_ISCHR(_os.fstat(handle.fileno()).st_mode):  # a hidden path: /dev/null in its place
            raise PermissionError(f"{path} is hidden (/dev/null in its place)")
        first = handle.read(1)
        handle.seek(0)
        handle.write(first)


def _create(path):
    with open(path, "x") as handle:
        handle.write("c19 was here\\n")


_EXISTING = ["README.md", "utils/grading/a1.py", "utils/grading/verify.py", "tools/course.py",
             "assignments/a1_numpy_convolution/a1_numpy_convolution.ipynb",
             "solutions/a1_numpy_convolution/a1_numpy_convolution.ipynb", ".grader_secret", "grading/gradebook.db"]
_here = _os.getcwd()
for _name in _EXISTING:
    _try(f"open {_name} (relative to the working folder) for writing", lambda: _reopen(_name))
    _try(f"open {_ROOT / _name} for writing", lambda: _reopen(_ROOT / _name))
    _try(f"touch {_ROOT / _name}", lambda: _os.utime(_ROOT / _name))
try:
    _os.chdir(_ROOT)
    for _name in _EXISTING:
        _try(f"open {_name} (relative to the repository) for writing", lambda: _reopen(_name))
    _try("create c19-was-here.txt in the repository", lambda: _create("c19-was-here.txt"))
finally:
    _os.chdir(_here)
_try("create utils/c19_was_here.py", lambda: _create(_ROOT / "utils" / "c19_was_here.py"))
_try("create a file in site-packages",
     lambda: _create(_pathlib.Path(_os.__file__).parent / "site-packages" / "c19-was-here.txt"))
_try("create a file in the environment", lambda: _create(_pathlib.Path(_sys.prefix) / "c19-was-here.txt"))
for _state in _STATES:
    _try(f"delete {_state / 'gradebook.db'}", lambda: _os.remove(_state / "gradebook.db"))
    _try(f"delete {_state / 'submitted/c01_correct'}", lambda: _shutil.rmtree(_state / "submitted/c01_correct"))
    _try(f"create {_state / 'c19-was-here.txt'}", lambda: _create(_state / "c19-was-here.txt"))
    _try(f"open {_state / 'submitted/c02_partially_wrong/a1_numpy_convolution/a1_numpy_convolution.ipynb'}",
         lambda: _reopen(_state / "submitted/c02_partially_wrong/a1_numpy_convolution/a1_numpy_convolution.ipynb"))
"""


NETWORK = """
# corpus c20: the network. Loopback ports the test listens on (one of them), and a host on the internet.
import socket as _socket
import sys as _sys
import urllib.request as _urllib_request

_WHERE = "verifier" if _sys.argv and _sys.argv[0].endswith("_verify_child.py") else "kernel"


def _phone_home(tag):
    outcome = []
    for port in range(*PORTS):
        try:
            with _socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
                connection.sendall(f"c20 {_WHERE} {tag}\\n".encode())
                outcome.append(f"{port}: CONNECTED")
        except OSError as error:
            outcome.append(f"{port}: {type(error).__name__}")
    try:
        _urllib_request.urlopen("http://93.184.215.14/", timeout=2)
        outcome.append("internet: CONNECTED")
    except Exception as error:
        outcome.append(f"internet: {type(error).__name__}")
    return outcome


print("c20 top level:", _phone_home("top-level"))
"""


def build_network(alice) -> None:
    nb = copy.deepcopy(alice)
    append(nb, "conv_output_size", NETWORK.replace("PORTS", repr(PORTS)))
    replace(nb, "conv_param_count", '''
        _CALLED = []


        def conv_param_count(f, c_in, c_out):
            """Right; phones home at its first call."""
            if not _CALLED:
                _CALLED.append(_phone_home("call"))
            return (f * f * c_in + 1) * c_out
        ''')
    write("c20_network", nb)
    entry("c20_network", 20, "connects to 127.0.0.1 ports %d-%d (the test listens on one) and to a host on the "
          "internet, at the top level and inside a graded function" % (PORTS[0], PORTS[1] - 1), scores(),
          notes="Full marks. The verifier's child has no network; the notebook's kernel keeps the host's network "
                "(it talks to nbgrader over TCP), see the test.")


def build_surgery(alice, bob) -> None:
    # a: deleted and duplicated cells
    nb = copy.deepcopy(alice)
    del nb.cells[find(nb, "conv_param_count")]
    del nb.cells[find(nb, "pool_backward_tests")]
    wrong_zero_pad = copy.deepcopy(cell(nb, "zero_pad"))
    wrong_zero_pad.id = "c21a0zeropad"
    wrong_zero_pad.source = "def zero_pad(x, pad):\n    return x   # a first, wrong attempt"
    nb.cells.insert(find(nb, "zero_pad"), wrong_zero_pad)
    wrong_pool = copy.deepcopy(cell(nb, "pool_forward"))
    wrong_pool.id = "c21a0poolfwd"
    wrong_pool.source = BOB_POOL_FORWARD
    nb.cells.insert(find(nb, "pool_forward") + 2, wrong_pool)  # after the original and its test cell
    test_copy = copy.deepcopy(cell(nb, "conv_forward_tests"))
    test_copy.id = "c21a0cftests"
    nb.cells.insert(find(nb, "conv_forward_tests") + 1, test_copy)
    write("c21a_deleted_duplicated", nb)
    entry("c21a_deleted_duplicated", 21, "deleted cells (conv_param_count's solution, pool_backward's test) and "
          "duplicated cells (a wrong zero_pad before the right one, bob's pool_forward after alice's, the "
          "conv_forward test cell twice)", scores(conv_param_count=0, pool_forward=0), intake="repaired",
          items={"conv_param_count": "missing", "zero_pad": "duplicated", "pool_forward": "duplicated"},
          intake_messages=["`pool_backward_tests` was deleted", "`conv_forward_tests` appears 2 times"],
          messages={"conv_param_count_tests": "not implemented yet", "pool_forward_tests": "swapped"},
          notes="The last code copy of a duplicated cell is graded (what running top to bottom leaves defined).")

    # b: retyped and metadata-stripped cells
    nb = copy.deepcopy(alice)
    original = cell(nb, "conv_output_size")
    nb.cells[find(nb, "conv_output_size")] = nbformat.v4.new_markdown_cell(
        original.source, metadata=copy.deepcopy(original.metadata), id=original.id)
    cell(nb, "pool_forward").metadata.pop("nbgrader")      # lost its metadata, kept its id
    css = cell(nb, "conv_single_step")
    css.metadata.pop("nbgrader")                           # lost its metadata and its id
    css.id = "c21bnewid01"
    position = find(nb, "conv_backward")
    nb.cells[position] = nbformat.v4.new_raw_cell(nb.cells[position].source, id="c21bnewid02")  # raw, no metadata
    write("c21b_retyped_stripped", nb)
    entry("c21b_retyped_stripped", 21, "retyped cells (conv_output_size's as Markdown, conv_backward's as a raw cell "
          "without metadata or id) and stripped metadata (pool_forward's, id kept; conv_single_step's, new id)",
          scores(), intake="repaired",
          items={"conv_output_size": "retyped", "conv_backward": "retyped", "pool_forward": "metadata_stripped",
                 "conv_single_step": "metadata_stripped"},
          notes="The intake grades a retyped cell's text as code and finds stripped cells by id or by the "
                "function they define: full marks.")

    # c: edited locked cells, another kernel, an extra notebook
    nb = copy.deepcopy(alice)
    cell(nb, "conv_forward").source = BOB_CONV_FORWARD
    cell(nb, "conv_forward_tests").source = "pass"
    cell(nb, "pool_backward_tests").source = 'print("pool_backward: all checks passed")'
    nb.metadata["kernelspec"] = {"display_name": "R", "language": "R", "name": "ir"}
    nb.metadata["language_info"] = {"name": "R"}
    write("c21c_locked_edited_kernelspec", nb)
    extra = nbformat.v4.new_notebook()
    extra.cells = [nbformat.v4.new_code_cell("import os\nos._exit(1)  # never run: not the assignment's notebook",
                                             id="c21cextra01")]
    extra.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    write("c21c_locked_edited_kernelspec", extra, "notes.ipynb")
    entry("c21c_locked_edited_kernelspec", 21, "locked test cells edited (conv_forward's replaced by `pass`, with "
          "bob's wrong conv_forward; pool_backward's replaced by a print), the R kernel, an extra notebook",
          scores(conv_forward=0), intake="repaired",
          intake_messages=["`conv_forward_tests` was edited", "`pool_backward_tests` was edited", "`ir`",
                           "extra notebook(s) ignored"],
          messages={"conv_forward_tests": "check the padding term"})

    # d: renamed, with another notebook next to it
    write("c21d_renamed_extra", alice, f"{AID} (1).ipynb")
    scratch = copy.deepcopy(bob)
    scratch.cells = scratch.cells[:12]
    write("c21d_renamed_extra", scratch, "scratch.ipynb")
    entry("c21d_renamed_extra", 21, "the notebook renamed `a1_numpy_convolution (1).ipynb`, next to another "
          "notebook (the first 12 cells of bob's)", scores(), intake="repaired",
          intake_messages=["renamed", "scratch.ipynb"])


def build_malformed(alice) -> None:
    text = nbformat.writes(alice)
    write_bytes("c22a_truncated_json", NAME, text[: len(text) * 3 // 5].encode("utf-8"))
    entry("c22a_truncated_json", 22, "the notebook's JSON cut at 60 %", {g: 0 for g in POINTS}, intake="malformed",
          intake_messages=["not valid JSON"])

    v3 = nbformat.convert(copy.deepcopy(alice), 3)
    write_bytes("c22b_nbformat3", NAME, nbformat.writes(v3, version=3).encode("utf-8"))
    entry("c22b_nbformat3", 22, "the notebook saved in nbformat 3", {g: 0 for g in POINTS}, intake="malformed",
          intake_messages=["nbformat 3"])

    marker = "# int() rounds down for positive numbers"
    assert marker in text
    data = text.encode("utf-8").replace(marker.encode(), "# int() arrondit à l'entier inférieur".encode("latin-1"))
    write_bytes("c22c_not_utf8", NAME, data)
    entry("c22c_not_utf8", 22, "the notebook's bytes are Latin-1 in one comment (not UTF-8)", {g: 0 for g in POINTS},
          intake="malformed", intake_messages=["not valid UTF-8"])

    entry("c22d_enormous", 22, "alice's notebook with 25 MB of saved output: over the intake's 20 MiB cap (made by "
          "the test in its temporary state, not committed)", {g: 0 for g in POINTS}, intake="malformed",
          intake_messages=["over the limit"], generated_by_test=True)


def build_empty_and_random(alice) -> None:
    write_bytes("c23_empty_folder", ".gitkeep", b"")
    entry("c23_empty_folder", 23, "an empty submission folder (only a dot file, which git needs)",
          {g: 0 for g in POINTS}, intake="missing", intake_messages=["no notebook was submitted"],
          notes="A student with no folder at all is not graded; the table shows 'not submitted' (tested).")

    nb = copy.deepcopy(alice)
    append(nb, "conv_single_step", """
        _conv_single_step = conv_single_step


        def conv_single_step(a_slice, w, b):
            \"\"\"Unseeded noise on the answer: wrong at every call.\"\"\"
            return _conv_single_step(a_slice, w, b) + float(np.random.normal(scale=1e-3))
        """)
    forward = cell(nb, "conv_forward")
    forward.source = forward.source.replace(
        "    out = np.zeros((n_images, h_out, w_out, w.shape[3]))",
        "    out = np.random.rand(n_images, h_out, w_out, w.shape[3])   # unseeded, and then fully overwritten")
    assert "np.random.rand" in forward.source
    write("c24_unseeded_random", nb)
    entry("c24_unseeded_random", 24, "unseeded np.random inside functions: noise added to conv_single_step's answer "
          "(always wrong), an output buffer of random numbers that conv_forward overwrites (always right)",
          scores(conv_single_step=0), messages={"conv_single_step_tests": "conv_single_step"},
          notes="Deterministic verdicts although the code is not: re-grading must agree.")


class _Payload:
    """Unpickling this creates UNPICKLE_SENTINEL (through open), which the test looks for."""

    def __reduce__(self):
        return open, (UNPICKLE_SENTINEL, "a")


def build_unpickle(alice) -> None:
    nb = copy.deepcopy(alice)
    replace(nb, "conv_param_count", '''
        # corpus c25: a table and weights handed in next to the notebook, as a pickle and as an object .npy
        import pickle

        try:
            with open("c25_table.pkl", "rb") as _handle:
                _TABLE = pickle.load(_handle)
        except Exception as _error:
            _TABLE = {}
            print("c25: no table:", type(_error).__name__)
        try:
            _WEIGHTS = np.load("c25_weights.npy", allow_pickle=True)
        except Exception as _error:
            _WEIGHTS = None
            print("c25: no weights:", type(_error).__name__)


        def conv_param_count(f, c_in, c_out):
            """From the table when it has the answer, else computed (right either way)."""
            key = (f, c_in, c_out)
            return _TABLE[key] if key in _TABLE else (f * f * c_in + 1) * c_out
        ''')
    write("c25_unpickle", nb)
    table = {"payload": _Payload(), (3, 3, 10): 280, (5, 3, 6): 456}
    write_bytes("c25_unpickle", "c25_table.pkl", pickle.dumps(table, protocol=4))
    weights = np.empty(1, dtype=object)
    weights[0] = _Payload()
    path = folder("c25_unpickle") / "c25_weights.npy"
    np.save(path, weights, allow_pickle=True)
    entry("c25_unpickle", 25, "a .pkl and an object .npy whose unpickling creates %s, in the submission folder and "
          "loaded by conv_param_count's cell" % UNPICKLE_SENTINEL, scores(),
          notes="Full marks (the function computes when the table is missing); the grader must never unpickle "
                "them: the sentinel file must not appear.")


# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    import argparse

    global OUT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE, help="folder to write (default: tests/corpus)")
    OUT = parser.parse_args(argv).out.resolve()
    OUT.mkdir(parents=True, exist_ok=True)
    ENTRIES.clear()
    alice, bob, released = load(ALICE), load(BOB), load(RELEASED)
    for path in OUT.iterdir():
        if path.is_dir() and path.name[:1] == "c" and path.name[1:3].isdigit():
            shutil.rmtree(path)
    build_controls(alice, bob, released)
    build_hangs(alice)
    build_memory(alice)
    build_exits(alice)
    build_processes(alice)
    build_floods(alice)
    build_subversion(alice)
    build_rigged(alice)
    build_forbidden(alice)
    build_reads_writes(alice)
    build_network(alice)
    build_surgery(alice, bob)
    build_malformed(alice)
    build_empty_and_random(alice)
    build_unpickle(alice)
    kinds = {e["kind"] for e in ENTRIES.values()}
    assert kinds == set(range(1, 26)), sorted(set(range(1, 26)) - kinds)
    expected = {
        "assignment": AID,
        "points": POINTS,
        "unpickle_sentinel": UNPICKLE_SENTINEL,
        "ports": list(PORTS),
        "students": dict(sorted(ENTRIES.items())),
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(ENTRIES)} entries ({sum(not e.get('generated_by_test') for e in ENTRIES.values())} folders) "
          f"and expected.json under {OUT}")


if __name__ == "__main__":
    main()
