"""Grade one submission as a pure task; commit its record to the gradebook from one process.

The grading of a class is split in two so that it can run in parallel and
survive hostile submissions:

* :func:`grade_submission` (a task; any worker process) takes plain data
  (assignment, student, state folder, seed) and returns a plain JSON record.
  It writes only in a scratch folder of its own (a new temporary folder, outside the
  state folder, which the sandbox hides), and reads the template made by :func:`prepare`:

  1. **intake** (:mod:`tools.intake`): the student's file is checked for
     surgery and the notebook is rebuilt from the master copy;
  2. **nbgrader autograde** of the rebuilt notebook into a scratch gradebook
     (a copy of a template made once per assignment), its kernel started in the
     sandbox (:mod:`utils.grading.kernel`) with per-cell and per-notebook time
     limits. If the run fails or hangs it is killed, and the unchanged template
     is autograded instead, so the submission still has its rows;
  3. **verification** (:mod:`utils.grading.verify`): a trusted verdict for every
     graded test, from plain data returned by a sandboxed child.

* :func:`commit` (the coordinator, one process only) writes a record into the
  real gradebook in one transaction: the notebook run's scores as nbgrader's
  ``auto_score``, the verifier's score as an override (``manual_score``) with a
  comment where the two differ, the intake's messages as comments, and the
  autograded notebook into ``<state>/autograded``. Committing the same record
  twice leaves the same rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import pathlib
import re
import shutil
import sys
import threading
import time
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import intake as intake_module  # noqa: E402
from utils.grading import a2 as a2_checks  # noqa: E402
from utils.grading import sandbox  # noqa: E402

# Time limits; the environment variables override them (a test of hostile submissions sets them low).
NOTEBOOK_SECONDS = float(os.environ.get("CNN_COURSE_NOTEBOOK_SECONDS", 240))  # one nbgrader autograde run
CELL_SECONDS = int(os.environ.get("CNN_COURSE_CELL_SECONDS", 60))               # one cell in the kernel
VERIFY_SECONDS = float(os.environ.get("CNN_COURSE_VERIFY_SECONDS", 30))        # one verifier child
MAX_OUTPUT_TEXT = 20_000       # characters of one output kept in the autograded notebook (and the feedback)
MAX_OUTPUT_IMAGE = 300_000     # bytes of one embedded image (base64) kept
MAX_NOTEBOOK_OUTPUT = 1_000_000  # all outputs of one autograded notebook (JSON characters; feedback < 2 MB)
VERIFIED_MARK = "[verified]"  # starts every comment and override this grader writes

# The assignments whose autograded functions the trusted verifier decides: the modules its child may not
# import (reference implementations) and the functions that are tripwires there.
VERIFIED = {
    "a1_numpy_convolution": {
        "blocked_modules": ("utils.conv", "utils.shapes", "utils.models", "utils.filters", "utils.grading.a1",
                            "utils.grading.a2", "utils.grading.a3", "utils.grading.verify", "scipy", "torch",
                            "tensorflow", "keras", "skimage", "cv2", "jax"),
        "tripwires": ("numpy.convolve", "numpy.correlate"),
    },
    # PyTorch stays (the solutions need it); its convolution and pooling are tripwires (utils.grading.a2's list)
    "a2_pytorch_convolution": {
        "blocked_modules": ("utils.conv", "utils.shapes", "utils.models", "utils.filters", "utils.grading.a1",
                            "utils.grading.a2", "utils.grading.a3", "utils.grading.verify", "scipy", "tensorflow",
                            "keras", "skimage", "cv2", "jax", "torchvision"),
        "tripwires": a2_checks.FORBIDDEN,
    },
    # models cross as plain data (utils.grading.model_transport): the verifier rebuilds them from torch.nn layers
    "a3_building_cnns": {
        "blocked_modules": ("utils.conv", "utils.models", "utils.filters", "utils.grading.a1", "utils.grading.a2",
                            "utils.grading.a3", "utils.grading.verify", "torchvision", "timm",
                            "segmentation_models_pytorch"),  # not SciPy or JAX: Keras imports them
        "tripwires": (),
        "wall_seconds": 120.0,  # train_digits may take up to 45 s (utils.grading.a3.TIME_LIMIT_S) on a busy machine
    },
}


def work_dir(state: pathlib.Path, aid: str) -> pathlib.Path:
    return state / "work" / aid


def _nbgrader(state: pathlib.Path, **paths):
    from tools.course import Nbgrader

    return Nbgrader(state, **paths)


def prepare(aid: str, state: pathlib.Path, env: dict) -> pathlib.Path:
    """Once per assignment, in the coordinator: a template scratch course with the assignment released."""
    template = work_dir(state, aid) / "template"
    if template.exists():
        shutil.rmtree(template)
    template.mkdir(parents=True)
    nbgrader = _nbgrader(template, db_url=f"sqlite:///{template / 'gradebook.db'}")
    nbgrader.run("generate_assignment", aid, "--force", env=env)
    return template


# ---------------------------------------------------------------------------------------------
# the task


_VERIFIERS: dict = {}


def _verifier(aid: str):
    """One verifier per assignment per process (recording the checks' calls costs about a second)."""
    if aid not in _VERIFIERS:
        from utils.grading import verify

        settings = dict(VERIFIED[aid])
        wall = max(VERIFY_SECONDS, settings.pop("wall_seconds", 0.0))
        assignment = verify.assignment_from_notebook(ROOT / "solutions" / aid / f"{aid}.ipynb", **settings)
        hidden = [ROOT / "solutions", ROOT / "grading", ROOT / ".grader_secret", ROOT / "examples", ROOT / "tests",
                  ROOT / ".git"]
        _VERIFIERS[aid] = verify.Verifier(assignment, hidden_paths=[p for p in hidden if p.exists()],
                                          wall_seconds=wall, budget_seconds=4 * wall)
    return _VERIFIERS[aid]


def _autograde(aid: str, student: str, scratch: pathlib.Path, template: pathlib.Path, env: dict,
               notebook_seconds: float) -> tuple[bool, str]:
    """nbgrader autograde of ``scratch/submitted/<student>/<aid>`` into ``scratch``; (ok, message).

    nbgrader runs in this process (its import costs seconds, paid once per worker); the student's code runs
    in the sandboxed kernel. A watchdog kills the kernel at ``notebook_seconds`` (nbgrader then sees a dead
    kernel and finishes); the kernel's own sandbox limit is a little longer still.
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from sqlalchemy.exc import SAWarning
    from traitlets.config import Config

    from utils.grading import kernel

    kernel_env = {name: env[name] for name in (*kernel.PASSED_VARIABLES, *kernel.WRAPPER_VARIABLES) if name in env}
    kernel_env["CNN_COURSE_KERNEL_SECONDS"] = str(notebook_seconds + 30)
    name = kernel.install_kernelspec(scratch / "jupyter", scratch / "kernel", env=kernel_env)
    config = Config()
    config.CourseDirectory.root = str(scratch)
    config.CourseDirectory.release_directory = str(template / "release")
    config.CourseDirectory.submitted_directory = "submitted"
    config.CourseDirectory.autograded_directory = "autograded"
    config.CourseDirectory.db_url = f"sqlite:///{scratch / 'gradebook.db'}"
    # Sockets as files, at an absolute path (a relative one would be resolved from two different folders): the
    # kernel then needs no network at all (see utils.grading.kernel). Unix socket paths must stay short.
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(scratch / "ipc")
    for section in ("ExecutePreprocessor", "Execute"):
        config[section].kernel_name = name
        config[section].timeout = CELL_SECONDS
        config[section].startup_timeout = 60
    saved = {key: os.environ.get(key) for key in ("JUPYTER_PATH", "JUPYTER_RUNTIME_DIR")}
    os.environ["JUPYTER_PATH"] = str(scratch / "jupyter")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(scratch / "runtime")
    fired = threading.Event()

    def stop_kernel():
        fired.set()
        kernel.kill_leftovers(scratch / "kernel")

    watchdog = threading.Timer(notebook_seconds, stop_kernel)
    started = time.monotonic()
    watchdog.start()
    try:
        api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)  # nbgrader's add_submission under SQLAlchemy 2
            result = api.autograde(aid, student, force=True, create=True)
    finally:
        watchdog.cancel()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        kernel.kill_leftovers(scratch / "kernel")
    for path in (scratch / "autograded").glob("*/*/*.ipynb"):
        cap_outputs(path)
    if fired.is_set():
        return False, (f"the notebook did not finish within {notebook_seconds:.0f} s and was stopped; "
                       "it was graded from its functions alone")
    if not result.get("success"):
        errors = [line.strip() for line in (result.get("error") or result.get("log") or "").splitlines()
                  if line.strip()]
        tail = " ".join(errors[-2:])[-300:]
        return False, f"the notebook run failed ({tail}); it was graded from its functions alone"
    return True, f"ran in {time.monotonic() - started:.1f} s"


def cap_outputs(path: pathlib.Path) -> int:
    """Make an executed notebook safe and small for the feedback; returns how many outputs were changed.

    Each text output is cut at MAX_OUTPUT_TEXT characters, each image over MAX_OUTPUT_IMAGE is removed, HTML
    and JavaScript outputs are replaced by their plain-text form (student HTML would run in whoever opens the
    feedback), and when all outputs together still exceed MAX_NOTEBOOK_OUTPUT the largest go first.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cuts = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text" in output and len(output["text"]) > MAX_OUTPUT_TEXT:
                cut = f"\n[... output cut at {MAX_OUTPUT_TEXT:,} characters]"
                output["text"] = output["text"][:MAX_OUTPUT_TEXT] + cut
                cuts += 1
            data = output.get("data", {})
            for mime in list(data):
                value = data[mime]
                value = "".join(value) if isinstance(value, list) else value
                limit = MAX_OUTPUT_TEXT if mime.startswith("text/") else MAX_OUTPUT_IMAGE
                active = mime in ("text/html", "application/javascript", "image/svg+xml") or "script" in mime
                if active or (isinstance(value, str) and len(value) > limit):
                    data.pop(mime)
                    data.setdefault("text/plain", f"[{mime} output of {len(str(value)):,} characters removed]")
                    cuts += 1
            if output.get("output_type") == "error":
                trace = output.get("traceback", [])
                if sum(len(line) for line in trace) > MAX_OUTPUT_TEXT:
                    output["traceback"] = [*trace[:3], "[... traceback cut]", *trace[-2:]][:6]
                    output["evalue"] = output.get("evalue", "")[:2000]
                    cuts += 1
    sized = [(len(json.dumps(output)), cell, i)
             for cell in nb.cells for i, output in enumerate(cell.get("outputs", []))]
    total = sum(size for size, _, _ in sized)
    for size, cell, i in sorted(sized, key=lambda item: -item[0]):
        if total <= MAX_NOTEBOOK_OUTPUT:
            break
        cell.outputs[i] = nbformat.v4.new_output("stream", name="stdout",
                                                 text="[output removed: the notebook's outputs were too large]\n")
        total -= size
        cuts += 1
    if cuts:
        # nbgrader leaves the autograded notebook read-only (0444): root writes into it anyway, another user
        # cannot, so the capped copy replaces it, with the same mode
        capped = path.with_name(f".{path.name}.capped")
        nbformat.write(nb, capped)
        capped.chmod(path.stat().st_mode & 0o7777)
        os.replace(capped, path)
    return cuts


def _scores(db_path: pathlib.Path, aid: str, student: str) -> tuple[dict, dict, str]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db_path}") as gradebook:
        submission = gradebook.find_submission(aid, student)
        grades, comments, notebook_name = {}, {}, ""
        timestamp = submission.timestamp.isoformat() if submission.timestamp else None
        for notebook in submission.notebooks:
            notebook_name = notebook.name
            for grade in notebook.grades:
                grades[grade.name] = {"auto_score": grade.auto_score, "max_score": float(grade.max_score)}
            for comment in notebook.comments:
                comments[comment.name] = comment.auto_comment
        return grades, comments, notebook_name, timestamp


def kernel_seed(seed: int, aid: str, student: str) -> int:
    """The seed the student's own kernel sees: derived from the secret seed, useless for recovering it.

    Code in the kernel can read its environment, and a seed printed into the notebook would reach the
    student with the feedback; the verdicts come from the verifier, which uses the real seed.
    """
    digest = hmac.new(str(seed).encode(), f"{aid}/{student}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def grade_submission(aid: str, student: str, state: str | pathlib.Path, env: dict, seed: int,
                     notebook_seconds: float | None = None, scratch: str | pathlib.Path | None = None) -> dict:
    """Grade one submission in its own scratch folder; returns the JSON record :func:`commit` writes.

    ``env``: the grading environment for the kernel (without the seed); ``seed``: the grader's secret seed,
    which only this (trusted) process and the verifier's checks use. ``scratch``: an empty folder of the
    caller's to work in (outside ``state``; the caller removes it), else a new temporary folder; the record's
    ``autograded`` and ``scratch`` name paths in it (see :func:`pack_autograded` for a record without paths).
    """
    state = pathlib.Path(state)
    if scratch is not None:
        return _grade_in(pathlib.Path(scratch), aid, student, state, env, seed, notebook_seconds or NOTEBOOK_SECONDS)
    # Outside the state folder: the sandbox hides the state (gradebook, other submissions) from student code,
    # and the kernel's working folder must not lie under a hidden one.
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", student)[:12]
    scratch = pathlib.Path(sandbox.scratch_dir(f"cnng-{safe}-"))
    try:
        return _grade_in(scratch, aid, student, state, env, seed, notebook_seconds or NOTEBOOK_SECONDS)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _grade_in(scratch: pathlib.Path, aid: str, student: str, state: pathlib.Path, env: dict, seed: int,
              notebook_seconds: float) -> dict:
    started = time.monotonic()
    template = work_dir(state, aid) / "template"
    shutil.copy2(template / "gradebook.db", scratch / "gradebook.db")
    env = {**env, "CNN_COURSE_GRADER_SEED": str(kernel_seed(seed, aid, student))}
    os.environ["CNN_COURSE_GRADER_SEED"] = str(seed)  # the verifier's checks in this (trusted) process

    master = template / "release" / aid / f"{aid}.ipynb"
    folder = state / "submitted" / student / aid
    intake = intake_module.read_submission(folder, master)
    dest = scratch / "submitted" / student / aid  # nbgrader's submitted folder in the scratch course
    intake_module.write_rebuilt(intake, dest)
    timestamp = folder / "timestamp.txt"
    if timestamp.is_file() and not timestamp.is_symlink() and timestamp.stat().st_size < 200:
        shutil.copy2(timestamp, dest / "timestamp.txt")

    env["CNN_COURSE_KERNEL_HIDDEN"] = os.pathsep.join([str(state.resolve()), str(template.resolve())])
    timings = {"intake": round(time.monotonic() - started, 2)}
    ok, run_message = _autograde(aid, student, scratch, template, env, notebook_seconds)
    timings["notebook"] = round(time.monotonic() - started - timings["intake"], 2)
    if not ok:
        # grade the unchanged template, so that the submission has its rows; the verifier decides the scores
        blank = intake_module.read_submission(scratch / "no-such-folder", master)
        shutil.rmtree(scratch / "submitted")
        shutil.copy2(template / "gradebook.db", scratch / "gradebook.db")
        intake_module.write_rebuilt(blank, dest)
        shutil.rmtree(scratch / "autograded", ignore_errors=True)
        retry_ok, retry_message = _autograde(aid, student, scratch, template, env, notebook_seconds)
        if not retry_ok:
            raise RuntimeError(f"autograding the unchanged template of {aid} failed: {retry_message}")
    grades, comments, notebook_name, timestamp = _scores(scratch / "gradebook.db", aid, student)

    verdicts = {}
    verify_started = time.monotonic()
    if aid in VERIFIED:
        sources = intake_module.solution_sources(intake)
        for gid, verdict in _verifier(aid).verify(sources, scratch / "verify", hidden=[state, template]).items():
            verdicts[gid] = {"score": verdict.score, "points": verdict.points, "passed": verdict.passed,
                             "message": verdict.message}
        shutil.rmtree(scratch / "verify", ignore_errors=True)
    timings["verify"] = round(time.monotonic() - verify_started, 2)
    return {
        "assignment": aid, "student": student, "notebook": notebook_name, "timestamp": timestamp,
        "intake": intake.to_json(),
        "notebook_run": {"ok": ok, "message": run_message},
        "grades": grades, "comments": comments, "verdicts": verdicts,
        "functions": _functions_of_tests(aid) if verdicts else {},
        "autograded": str(scratch / "autograded" / student / aid),
        "scratch": str(scratch),
        "seconds": round(time.monotonic() - started, 2), "timings": timings,
    }


def _functions_of_tests(aid: str) -> dict[str, list[str]]:
    """test grade_id -> the solution grade_ids whose functions its checks call."""
    verifier = _verifier(aid)
    owner = {name: gid for gid, names in verifier.functions.items() for name in names}
    return {gid: sorted({owner[c.function] for c in calls}) for gid, calls in verifier.calls.items()}


# ---------------------------------------------------------------------------------------------
# the coordinator


def validate(record: dict) -> None:
    """Raise ValueError unless ``record`` has the shape :func:`grade_submission` returns.

    The autograded notebook comes either as a folder on this machine (``autograded``) or, from a worker on
    any machine, as the files themselves (``autograded_files``, see :func:`pack_autograded`).
    """
    for key, kind in (("assignment", str), ("student", str), ("notebook", str), ("intake", dict),
                      ("notebook_run", dict), ("grades", dict), ("comments", dict), ("verdicts", dict)):
        if not isinstance(record.get(key), kind):
            raise ValueError(f"grading record: {key!r} must be a {kind.__name__}")
    if "autograded_files" in record:
        _unpack_autograded(record["autograded_files"])  # raises ValueError when it does not fit
    elif not isinstance(record.get("autograded"), str):
        raise ValueError("grading record: 'autograded' must be a str (or 'autograded_files' a dict)")
    for gid, grade in record["grades"].items():
        if not isinstance(grade, dict) or not isinstance(grade.get("max_score"), (int, float)):
            raise ValueError(f"grading record: bad grade {gid!r}")
    for gid, verdict in record["verdicts"].items():
        if gid not in record["grades"] or not 0 <= verdict.get("score", -1) <= record["grades"][gid]["max_score"]:
            raise ValueError(f"grading record: verdict {gid!r} does not fit its grade")


def _solution_comment(record: dict, gid: str) -> str | None:
    lines = []
    items = record["intake"].get("items", {})
    if gid == next(iter(items), None):
        lines += record["intake"].get("messages", [])
        if not record["notebook_run"]["ok"]:
            lines.append(record["notebook_run"]["message"])
    if items.get(gid, {}).get("message"):
        lines.append(items[gid]["message"])
    for test, owners in record.get("functions", {}).items():
        verdict = record["verdicts"].get(test)
        auto = record["grades"].get(test, {}).get("auto_score")
        if gid in owners and verdict is not None and verdict["score"] != auto:
            lines.append(f"{test}: {verdict['score']:g} of {verdict['points']:g} points from the trusted check "
                         f"(the notebook run gave {auto if auto is not None else 'no score'}). "
                         + (verdict["message"] or "It passed."))
    return f"{VERIFIED_MARK} " + "\n".join(lines) if lines else None


AUTOGRADED_MAX_BYTES = 16 * 2**20  # the files of one autograded submission in a record (the notebook is capped)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_. -]{0,200}")


def pack_autograded(folder: pathlib.Path) -> dict[str, dict]:
    """The files of an autograded submission folder as JSON: ``{name: {"encoding": "utf-8"|"base64", "content"}}``.

    A record that carries them (``autograded_files``) names no path, so it can come from another machine.
    """
    import base64

    files = {}
    for path in sorted(pathlib.Path(folder).iterdir()) if pathlib.Path(folder).is_dir() else []:
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        try:
            files[path.name] = {"encoding": "utf-8", "content": data.decode("utf-8")}
        except UnicodeDecodeError:
            files[path.name] = {"encoding": "base64", "content": base64.b64encode(data).decode("ascii")}
    _unpack_autograded(files)
    return files


def _unpack_autograded(files) -> dict[str, bytes]:
    """name -> bytes of ``autograded_files``; ValueError for a name that is not a plain file name, or too much."""
    import base64

    if not isinstance(files, dict):
        raise ValueError("grading record: 'autograded_files' must be a dict")
    out, total = {}, 0
    for name, entry in files.items():
        if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name):
            raise ValueError(f"grading record: autograded file name {str(name)[:80]!r} is not a plain file name")
        if not isinstance(entry, dict) or not isinstance(entry.get("content"), str):
            raise ValueError(f"grading record: autograded file {name!r} has no content")
        if entry.get("encoding") == "utf-8":
            data = entry["content"].encode("utf-8")
        elif entry.get("encoding") == "base64":
            try:
                data = base64.b64decode(entry["content"], validate=True)
            except ValueError:
                raise ValueError(f"grading record: autograded file {name!r} is not base64") from None
        else:
            raise ValueError(f"grading record: autograded file {name!r} has an unknown encoding")
        total += len(data)
        out[name] = data
    if total > AUTOGRADED_MAX_BYTES:
        raise ValueError(f"grading record: the autograded files hold {total:,} bytes, over {AUTOGRADED_MAX_BYTES:,}")
    return out


def commit(record: dict, db_url: str, state: pathlib.Path) -> None:
    """Write one record into the gradebook (one transaction) and its autograded notebook into ``state``."""
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.utils import parse_utc
    from sqlalchemy.exc import SAWarning

    validate(record)
    aid, student, notebook = record["assignment"], record["student"], record["notebook"]
    target = state / "autograded" / student / aid
    staging = target.with_name(f".{aid}.new")
    files = _unpack_autograded(record["autograded_files"]) if "autograded_files" in record else None
    source = pathlib.Path(record.get("autograded") or "/nonexistent")
    if files is not None or source.is_dir():
        shutil.rmtree(staging, ignore_errors=True)
        if files is not None:
            staging.mkdir(parents=True)
            for name, data in files.items():
                (staging / name).write_bytes(data)
        else:
            shutil.copytree(source, staging)
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
    with Gradebook(db_url) as gradebook:
        gradebook.update_or_create_student(student)
        try:
            submission = gradebook.find_submission(aid, student)
        except MissingEntry:
            with warnings.catch_warnings():
                # nbgrader's add_submission builds its rows with autoflush on; SQLAlchemy 2 warns about it
                warnings.simplefilter("ignore", SAWarning)
                submission = gradebook.add_submission(aid, student)
        if record.get("timestamp"):
            submission.timestamp = parse_utc(record["timestamp"])
        for gid, grade in record["grades"].items():
            row = gradebook.find_grade(gid, notebook, aid, student)
            row.auto_score = grade["auto_score"]
            verdict = record["verdicts"].get(gid)
            ours = row.manual_score is None or _ours(gradebook, record, gid, notebook)
            if verdict is not None and ours:
                row.manual_score = verdict["score"] if verdict["score"] != grade["auto_score"] else None
                row.needs_manual_grade = False
            elif row.manual_score is not None:
                row.needs_manual_grade = True  # an instructor's override stays; the new run asks for a look
            else:
                row.needs_manual_grade = grade["auto_score"] is None
        for gid, auto_comment in record["comments"].items():
            row = gradebook.find_comment(gid, notebook, aid, student)
            row.auto_comment = auto_comment
            if row.manual_comment is None or row.manual_comment.startswith(VERIFIED_MARK):
                row.manual_comment = _solution_comment(record, gid)
        gradebook.db.commit()
    if pathlib.Path(record.get("scratch") or "/").parent == pathlib.Path(sandbox.scratch_parent()):
        shutil.rmtree(record["scratch"], ignore_errors=True)


def _ours(gradebook, record: dict, test_gid: str, notebook: str) -> bool:
    # an override this grader wrote: the comment of the solution cell it belongs to carries the mark
    for owner in record.get("functions", {}).get(test_gid, []):
        with contextlib.suppress(Exception):
            comment = gradebook.find_comment(owner, notebook, record["assignment"], record["student"])
            if comment.manual_comment and comment.manual_comment.startswith(VERIFIED_MARK):
                return True
    return False

