"""Instructor commands: release assignments, grade a class, run the demo.

    python tools/course.py release [ASSIGNMENT ...]    regenerate assignments/ from solutions/
    python tools/course.py check-release               fail if assignments/ is stale
    python tools/course.py grade [ASSIGNMENT ...]      autograde, feedback, export, table
    python tools/course.py demo                        the whole pipeline on example submissions

nbgrader does the work (it stays the system of record: gradebook, formgrader,
feedback, export); this script runs its commands in the right order with the
course's settings. Grading state lives in one folder (default ``grading/``,
git-ignored; ``--state DIR`` for another):

    DIR/submitted/<student>/<assignment>/<assignment>.ipynb   what students handed in
    DIR/release/        assignments as generated for this gradebook
    DIR/autograded/     executed copies with scores
    DIR/feedback/       HTML per student (hidden tests and reference values removed)
    DIR/gradebook.db    SQLite gradebook (or $NBGRADER_DB_URL, e.g. PostgreSQL)
    DIR/grades.csv      nbgrader's export
    DIR/work/<assignment>/done/<student>.json   done markers: graded and committed (a rerun skips them)

``grade --jobs N`` grades N submissions at once on a Dask LocalCluster, ``grade --scheduler tcp://host:8786``
on a Dask cluster of several machines (tools/distributed_grading.py, README "Grading on several machines").

Hidden tests draw their inputs from the grader's secret seed:
``$CNN_COURSE_GRADER_SEED``, else the git-ignored file ``.grader_secret``,
which ``grade`` creates with a random seed the first time.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SOLUTIONS = ROOT / "solutions"
ASSIGNMENTS = ROOT / "assignments"
EXAMPLES = ROOT / "examples" / "submissions"
SEED_FILE = ROOT / ".grader_secret"
SEED_VARIABLE = "CNN_COURSE_GRADER_SEED"



class PipelineError(RuntimeError):
    """A step of the pipeline failed; the message says which and why."""


def assignment_ids(requested: list[str] | None = None) -> list[str]:
    available = sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir() and list(p.glob("*.ipynb")))
    if not requested:
        return available
    unknown = sorted(set(requested) - set(available))
    if unknown:
        raise PipelineError(f"unknown assignment(s) {unknown}; solutions/ has {available}")
    return list(requested)


class Nbgrader:
    """Runs nbgrader commands against one grading state folder."""

    def __init__(self, state: pathlib.Path, release_dir: pathlib.Path | None = None, db_url: str | None = None):
        self.state = state.resolve()
        self.release_dir = (release_dir or self.state / "release").resolve()
        default_db = f"sqlite:///{self.state / 'gradebook.db'}"
        self.db_url = db_url or (os.environ.get("NBGRADER_DB_URL") if state == ROOT / "grading" else None) or default_db
        self.executable = pathlib.Path(sys.executable).with_name("nbgrader")

    def flags(self) -> list[str]:
        def rel(path: pathlib.Path) -> str:
            return os.path.relpath(path, ROOT)

        return [
            f"--CourseDirectory.release_directory={rel(self.release_dir)}",
            f"--CourseDirectory.submitted_directory={rel(self.state / 'submitted')}",
            f"--CourseDirectory.autograded_directory={rel(self.state / 'autograded')}",
            f"--CourseDirectory.feedback_directory={rel(self.state / 'feedback')}",
            f"--CourseDirectory.db_url={self.db_url}",
            f"--Exchange.root={self.state / 'exchange'}",
        ]

    def run(self, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.executable), *args, *self.flags()]
        result = subprocess.run(command, cwd=ROOT, env=env or os.environ.copy(), capture_output=True, text=True)
        if check and result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
            raise PipelineError(f"nbgrader {' '.join(args)} failed (exit {result.returncode}):\n{tail}")
        return result


def grading_env(seed: int) -> dict:
    env = os.environ.copy()
    # nbgrader runs alembic (gradebook migrations) from the environment's bin/.
    bin_dir = str(pathlib.Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.update({
        SEED_VARIABLE: str(seed),
        # TensorFlow would otherwise log to stderr on import: nbgrader scores a
        # test cell with stderr output as 0. Both variables are needed.
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "CNN_COURSE_OFFLINE": env.get("CNN_COURSE_OFFLINE", "1"),
        # One thread per grading kernel: a submission's timing checks then do
        # not depend on what else the machine runs, and parallel grading uses
        # one core per submission instead of oversubscribing them.
        "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
    })
    return env


def grader_seed(create: bool = True) -> int:
    text = os.environ.get(SEED_VARIABLE)
    if text is None and SEED_FILE.is_file():
        text = SEED_FILE.read_text().strip()
    if text:
        try:
            return int(text)
        except ValueError:
            raise PipelineError(f"the grader seed must be an integer, got {text!r}") from None
    if not create:
        raise PipelineError(f"no grader seed: set {SEED_VARIABLE} or create {SEED_FILE.name}")
    seed = secrets.randbelow(2**31)
    SEED_FILE.write_text(f"{seed}\n")
    SEED_FILE.chmod(0o600)
    print(f"created {SEED_FILE.name} with a new random grader seed (keep it secret, keep it for regrades)")
    return seed


# ---------------------------------------------------------------------------
# release


def release(ids: list[str], release_dir: pathlib.Path = ASSIGNMENTS) -> list[pathlib.Path]:
    """Generate student notebooks from solutions/ into ``release_dir`` (nbgrader generate_assignment)."""
    written = []
    with tempfile.TemporaryDirectory(prefix="cnn-course-release-") as scratch:
        nbgrader = Nbgrader(pathlib.Path(scratch), release_dir=release_dir,
                            db_url=f"sqlite:///{pathlib.Path(scratch) / 'gradebook.db'}")
        for aid in ids:
            nbgrader.run("generate_assignment", aid, "--force", env=grading_env(0))
            for path in sorted((release_dir / aid).glob("*.ipynb")):
                normalize_release(path)
                written.append(path)
    return written


def normalize_release(path: pathlib.Path) -> None:
    """Drop what changes from run to run, so a regenerated release is byte-identical."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(nb, path)


def comparable(path: pathlib.Path) -> dict:
    """A notebook as JSON without nbgrader's volatile metadata."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        cell.pop("id", None)
        cell.get("metadata", {}).pop("execution", None)
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
    return nb


def check_release(ids: list[str]) -> list[str]:
    """Differences between the committed assignments/ and a fresh release; empty when up to date."""
    problems = []
    with tempfile.TemporaryDirectory(prefix="cnn-course-check-") as scratch:
        fresh_dir = pathlib.Path(scratch) / "assignments"
        release(ids, release_dir=fresh_dir)
        for aid in ids:
            fresh = {p.name: p for p in (fresh_dir / aid).glob("*.ipynb")}
            committed = {p.name: p for p in (ASSIGNMENTS / aid).glob("*.ipynb")}
            for name in sorted(set(fresh) | set(committed)):
                if name not in committed:
                    problems.append(f"assignments/{aid}/{name} is missing: run `make release`")
                elif name not in fresh:
                    problems.append(f"assignments/{aid}/{name} has no source in solutions/{aid}")
                elif comparable(fresh[name]) != comparable(committed[name]):
                    problems.append(f"assignments/{aid}/{name} differs from solutions/{aid}: run `make release`")
    return problems


# ---------------------------------------------------------------------------
# grade


def students_of(state: pathlib.Path, aid: str) -> list[str]:
    submitted = state / "submitted"
    if not submitted.is_dir():
        return []
    return sorted(p.name for p in submitted.iterdir() if (p / aid).is_dir())


def failing_messages(autograded: pathlib.Path) -> dict[str, str]:
    """grade_id -> the last line of the error a failing test cell printed."""
    import nbformat

    messages = {}
    for path in autograded.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("grade") or cell.cell_type != "code":
                continue
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    messages[meta["grade_id"]] = f"{output['ename']}: {output['evalue']}"[:300]
                elif output.get("output_type") == "stream" and output.get("name") == "stderr":
                    messages.setdefault(meta["grade_id"], "wrote to stderr: " + output["text"].strip()[:200])
    return messages


def check_feedback(state: pathlib.Path) -> list[pathlib.Path]:
    """Feedback files that would reveal hidden tests (markers or lines of them in the visible text)."""
    import html as html_module

    from tools import feedback

    leaks = []
    for html in sorted((state / "feedback").glob("*/*/*.html")):
        text = html.read_text(encoding="utf-8", errors="replace")
        # Syntax highlighting splits code into <span>s: compare the visible text.
        text = html_module.unescape(re.sub(r"<[^>]+>", "", text))
        if feedback.quotes_hidden_tests(text, feedback.hidden_lines(html.parent.name)):
            leaks.append(html)
    return leaks


def grade(ids: list[str], state: pathlib.Path, seed: int, quiet: bool = False,
          students: list[str] | None = None, jobs: int = 1, db_url: str | None = None,
          scheduler=None, gpu: bool = False, regrade: bool | None = None) -> dict:
    """Autograde every submission in ``state/submitted`` (or only ``students``'), then feedback, export.

    Each submission is one task (:func:`tools.distributed_grading.grade_task`: intake, sandboxed notebook run,
    trusted verification) run in this process (``jobs=1``), on a Dask LocalCluster of ``jobs`` single-threaded
    worker processes, or on the Dask cluster of ``scheduler`` (an address such as ``tcp://host:8786``, a
    scheduler file, or a connected ``distributed.Client``); this process alone writes the gradebook, one
    submission at a time (:func:`tools.autograde.commit`), so the grades depend neither on the executor nor
    on the order.
    ``gpu``: the tasks need a worker with a ``GPU`` resource. ``regrade``: grade again the submissions already
    graded (their done marker matches); default: only when ``students`` names them, so that a run that was
    stopped goes on where it was.
    ``db_url`` names the gradebook (SQLAlchemy URL, e.g. ``postgresql+psycopg2://user@host/gradebook``; the
    driver must be named: a bare ``postgresql://`` means psycopg 3 to SQLAlchemy 2); default: ``state/gradebook.db``
    (or ``$NBGRADER_DB_URL`` for the default state folder).

    Returns ``{student: {assignment: {"score", "max_score", "tests": {grade_id: (score, max)},
    "messages": {grade_id: text}, "intake": {...}}}}``.
    """
    from nbgrader.api import Gradebook
    from tqdm.auto import tqdm

    from tools import autograde, distributed_grading
    from utils.grading import sandbox

    # Before any student is graded: can the sandbox's uid reach the course's code and a scratch folder?
    # (Dask workers elsewhere check their own machine.)
    problem = None
    if scheduler is None:
        try:
            problem = sandbox.reach_problem([ROOT, sys.prefix])
            sandbox.scratch_parent()
        except sandbox.SandboxError as error:
            problem = str(error)
    if problem:
        raise PipelineError(f"cannot grade here: {problem}")

    nbgrader = Nbgrader(state, db_url=db_url)
    env = grading_env(seed)
    state.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    records: dict = {}
    errors: dict = {}
    if regrade is None:
        regrade = students is not None

    def selected(aid):
        return [s for s in students_of(state, aid) if students is None or s in students]

    with contextlib.ExitStack() as stack:
        executor = None
        for aid in ids:
            if not quiet:
                print(f"{aid}: releasing into the gradebook, then grading {len(selected(aid))} submission(s)")
            nbgrader.run("generate_assignment", aid, "--force", env=env)
            if not selected(aid):
                continue
            autograde.prepare(aid, state, env)
            if executor is None:  # started once, for the first assignment with submissions
                executor = stack.enter_context(distributed_grading.open_executor(
                    jobs=jobs, scheduler=scheduler, gpu=gpu, quiet=quiet, db_url=nbgrader.db_url))
            progress = tqdm(total=len(selected(aid)), desc=aid, unit="submission", disable=quiet)
            outcome = distributed_grading.grade_assignment(
                aid, selected(aid), state, seed, nbgrader.db_url, executor, regrade=regrade,
                progress=lambda _, bar=progress: bar.update())
            progress.close()
            if outcome.skipped and not quiet:
                print(f"{aid}: {len(outcome.skipped)} submission(s) already graded, unchanged (done markers in "
                      f"{distributed_grading.done_path(state, aid, '-').parent}); --regrade grades them again")
            if outcome.other_grader:
                print(f"{aid}: {len(outcome.other_grader)} of them were graded by another version of the grader "
                      f"({', '.join(outcome.other_grader[:5])}{', ...' if len(outcome.other_grader) > 5 else ''}); "
                      "--regrade grades them with this one", file=sys.stderr)
            records.update({(student, aid): record for student, record in outcome.records.items()})
            errors.update({(student, aid): message for student, message in outcome.errors.items()})
            only = ["--student", students[0]] if students is not None and len(students) == 1 else []
            feedback = nbgrader.run("generate_feedback", aid, *only, "--force", env=env, check=False)
            if feedback.returncode != 0:  # one student's notebook must not cost the others their feedback
                for student in sorted({s for (s, a) in records if a == aid}):
                    one = nbgrader.run("generate_feedback", aid, "--student", student, "--force", env=env,
                                       check=False)
                    if one.returncode != 0:
                        errors[(student, aid)] = "no feedback: " + " ".join(one.stderr.splitlines()[-1:])[:300]
    nbgrader.run("export", f"--to={state / 'grades.csv'}", env=env)
    for leak in check_feedback(state):
        # a last line of defence after tools.feedback's redaction: such a file is not handed out
        leak.unlink()
        student, aid = leak.parent.parent.name, leak.parent.name
        errors[(student, aid)] = f"feedback withheld: {leak.name} quoted the hidden tests"
    problems_file = state / "problems.json"
    problems_file.write_text(json.dumps({f"{s}/{a}": m for (s, a), m in sorted(errors.items())}, indent=1))
    if errors:
        print("problems (each costs only that submission):\n  "
              + "\n  ".join(f"{s} {a}: {m}" for (s, a), m in sorted(errors.items())), file=sys.stderr)

    with Gradebook(nbgrader.db_url) as gradebook:
        for (student, aid), record in sorted(records.items()):
            submission = gradebook.find_submission(aid, student)
            tests = {}
            for notebook in submission.notebooks:
                for grade_row in notebook.grades:
                    tests[grade_row.name] = (float(grade_row.score), float(grade_row.max_score))
            messages = failing_messages(state / "autograded" / student / aid)
            for gid, verdict in record["verdicts"].items():
                if verdict["passed"]:
                    messages.pop(gid, None)
                else:
                    messages[gid] = verdict["message"].splitlines()[0][:300] if verdict["message"] else "failed"
            results.setdefault(student, {})[aid] = {
                "score": float(submission.score),
                "max_score": float(submission.max_score),
                "tests": tests,
                "messages": {g: m for g, m in messages.items() if tests.get(g, (0, 0))[0] < tests.get(g, (0, 0))[1]},
                "intake": record["intake"],
                "seconds": record["seconds"],
            }
    return results


def print_table(results: dict, ids: list[str]) -> None:
    header = f"{'student':12s}" + "".join(f"{aid:>26s}" for aid in ids) + f"{'total':>14s}"
    print(header)
    print("-" * len(header))
    for student in sorted(results):
        row, total, total_max = f"{student:12s}", 0.0, 0.0
        for aid in ids:
            entry = results[student].get(aid)
            if entry is None:
                row += f"{'not submitted':>26s}"
                continue
            row += f"{entry['score']:>19.1f} / {entry['max_score']:<4.0f}"
            total += entry["score"]
            total_max += entry["max_score"]
        print(row + f"{total:>8.1f} / {total_max:<4.0f}")
    failing = []
    for student in sorted(results):
        for aid in ids:
            messages = results[student].get(aid, {}).get("messages", {})
            if messages and all("not implemented yet" in m for m in messages.values()):
                failing.append((student, aid, "(every test)", "nothing implemented yet"))
                continue
            failing += [(student, aid, g, m) for g, m in sorted(messages.items())]
    if failing:
        print("\nfailed tests:")
        for student, aid, grade_id, message in failing:
            print(f"  {student:10s} {aid:24s} {grade_id:26s} {message[:240]}")


def write_summary(results: dict, state: pathlib.Path) -> pathlib.Path:
    path = state / "summary.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "assignment", "score", "max_score"])
        for student in sorted(results):
            for aid, entry in sorted(results[student].items()):
                writer.writerow([student, aid, entry["score"], entry["max_score"]])
    return path


# ---------------------------------------------------------------------------
# demo


def demo(state: pathlib.Path, seed: int | None = None, jobs: int = 1) -> dict:
    """Copy the example class into a fresh state folder and run the whole pipeline."""
    ids = assignment_ids()
    if state.exists():
        shutil.rmtree(state)
    for notebook in sorted(EXAMPLES.glob("*/*/*.ipynb")):
        student, aid = notebook.parent.parent.name, notebook.parent.name
        target = state / "submitted" / student / aid
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(notebook, target / notebook.name)
    problems = check_release(ids)
    if problems:
        print("warning: " + "\n         ".join(problems))
    results = grade(ids, state, seed if seed is not None else grader_seed(), jobs=jobs)
    print()
    print_table(results, ids)
    print(f"\ngradebook: {Nbgrader(state).db_url}\nfeedback:  {state / 'feedback'}\n"
          f"grades:    {state / 'grades.csv'}")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_release = sub.add_parser("release", help="regenerate assignments/ from solutions/")
    p_release.add_argument("assignments", nargs="*")
    sub.add_parser("check-release", help="fail if assignments/ differs from what solutions/ generates")
    p_grade = sub.add_parser("grade", help="autograde DIR/submitted, feedback, export, table")
    p_grade.add_argument("assignments", nargs="*")
    p_grade.add_argument("--state", type=pathlib.Path, default=ROOT / "grading")
    p_grade.add_argument("--json", type=pathlib.Path, help="also write the results as JSON here")
    p_grade.add_argument("--jobs", type=int, default=1,
                         help="submissions graded at once: 1 grades in this process, N > 1 on a Dask LocalCluster "
                              "of N single-threaded worker processes (default 1)")
    p_grade.add_argument("--scheduler", metavar="ADDRESS",
                         help="grade on this Dask cluster instead (tcp://host:8786, tls://..., or the path of a "
                              "scheduler file); --jobs is then ignored")
    p_grade.add_argument("--scheduler-file", metavar="PATH", help="the same, from `dask scheduler --scheduler-file`")
    p_grade.add_argument("--gpu", action="store_true",
                         help="these assignments need a GPU: only workers started with --resources GPU=1 grade them")
    p_grade.add_argument("--student", action="append", metavar="ID",
                         help="grade only this student's submissions (repeat for several); they are graded again "
                              "even when unchanged")
    p_grade.add_argument("--regrade", action=argparse.BooleanOptionalAction, default=None,
                         help="grade again the submissions already graded and unchanged (default: skip them, so "
                              "that a stopped run goes on where it was, unless --student names them)")
    p_demo = sub.add_parser("demo", help="grade the example class in grading/demo")
    p_demo.add_argument("--state", type=pathlib.Path, default=ROOT / "grading" / "demo")
    p_demo.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    args = parser.parse_args(argv)
    try:
        if args.command == "release":
            for path in release(assignment_ids(args.assignments)):
                print(f"released {path.relative_to(ROOT)}")
        elif args.command == "check-release":
            problems = check_release(assignment_ids())
            for problem in problems:
                print(problem)
            return 1 if problems else 0
        elif args.command == "grade":
            ids = assignment_ids(args.assignments)
            if args.jobs < 1:
                raise PipelineError(f"--jobs must be at least 1, got {args.jobs}")
            if args.scheduler and args.scheduler_file:
                raise PipelineError("give --scheduler or --scheduler-file, not both")
            if args.scheduler_file and not pathlib.Path(args.scheduler_file).is_file():
                raise PipelineError(f"--scheduler-file {args.scheduler_file}: no such file")
            results = grade(ids, args.state.resolve(), grader_seed(), jobs=args.jobs, students=args.student,
                            scheduler=args.scheduler or args.scheduler_file, gpu=args.gpu,
                            regrade=args.regrade)
            print()
            print_table(results, ids)
            print(f"\nper-student summary: {write_summary(results, args.state.resolve())}")
            if args.json:
                args.json.write_text(json.dumps(results, indent=2, sort_keys=True))
        elif args.command == "demo":
            demo(args.state.resolve(), jobs=args.jobs)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        from tools import distributed_grading

        if not isinstance(error, distributed_grading.ClusterError):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
