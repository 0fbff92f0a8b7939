"""Every way nbgrader offers to autograde goes through the course's grader (intake, sandbox, verifier).

``nbgrader autograde`` on the command line, formgrader's Autograde button (its HTTP API) and
``NbGraderAPI.autograde`` all build nbgrader's ``Autograde`` converter, which passes each submitted
notebook twice through its exporter: a sanitize pass (submitted -> autograded) and an execute pass
that would run the student's code in a plain kernel, as the instructor, and save its grades.
nbgrader_config.py makes :class:`CourseAutogradeExporter` that exporter (``c.Autograde.exporter_class``,
one of nbgrader's configurable traits), so that:

- before any notebook is read, a course directory laid out otherwise than nbgrader_config.py says
  (another root, other submitted/autograded folders) is refused with a message naming ``make grade``;
- the sanitize pass grades the whole submission with the course's pipeline (``tools/course.py grade
  AID --student ID``, in a process of its own: intake, the sandboxed kernel, the trusted verifier, the
  gradebook written by the pipeline alone) and hands nbgrader the pipeline's autograded notebook;
- the execute pass returns that notebook unchanged: nbgrader's preprocessors (its kernel, its
  ``SaveAutoGrades``) never run, so no student code runs outside the sandbox and nothing overwrites the
  verified grades.

A submission the pipeline could not grade is that student's failure alone: nbgrader logs it and goes on
with the next student, as it does for its own errors.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

from nbconvert.exporters import NotebookExporter
from nbgrader.converters.base import NbGraderException

ROOT = pathlib.Path(__file__).resolve().parents[1]
GRADING = ROOT / "grading"
# The layout the pipeline grades (nbgrader_config.py's): anything else is refused.
LAYOUT = {
    "root": ROOT,
    "source_directory": ROOT / "solutions",
    "submitted_directory": GRADING / "submitted",
    "autograded_directory": GRADING / "autograded",
}
# Set for the pipeline's process: an Autograde converter built inside it (none is: it configures its own
# nbgrader explicitly) must never route back into it.
ROUTED_VARIABLE = "CNN_COURSE_ROUTED_AUTOGRADE"
HINT = "run `make grade` (A=<assignment> for one) in the course directory instead"


def layout_problem(coursedir) -> str | None:
    """Why nbgrader's course directory is not the one the course's pipeline grades, or None."""
    for name, expected in LAYOUT.items():
        value = coursedir.root if name == "root" else os.path.join(coursedir.root, getattr(coursedir, name))
        if pathlib.Path(value).resolve() != expected:
            return (f"this course's autograder grades only its own layout, and CourseDirectory.{name} is "
                    f"{getattr(coursedir, name)!r} (expected {os.path.relpath(expected, ROOT)!r} under {ROOT}): {HINT}")
    return None


def pipeline_command(aid: str, students: list[str], regrade: bool) -> list[str]:
    """The course pipeline's command that grades these students' submissions of aid (the course's
    interpreter when it has one). regrade False: a submission graded before and unchanged is kept."""
    venv_python = ROOT / ".venv" / "bin" / "python"
    python = str(venv_python) if venv_python.exists() else sys.executable
    command = [python, str(ROOT / "tools" / "course.py"), "grade", aid]
    for student in students:
        command += ["--student", student]
    return command + ["--regrade" if regrade else "--no-regrade"]


def students_to_convert(converter, aid: str) -> list[str]:
    """The students whose submission of aid nbgrader's converter is about to convert (one pipeline run grades
    them all: its start, release and export are paid once, not once per student)."""
    regexp = re.compile(converter._format_source("(?P<assignment_id>.*)", "(?P<student_id>.*)", escape=True))
    students = []
    for folder in sorted(getattr(converter, "assignments", {})):
        match = regexp.match(folder)
        if match and match.group("assignment_id") == aid:
            students.append(match.group("student_id"))
    return students


class CourseAutogradeExporter(NotebookExporter):
    """nbgrader's Autograde exporter, routed through the course's pipeline (see the module docstring).

    ``parent`` is nbgrader's ``Autograde`` converter: its ``coursedir`` gives the layout and the gradebook's
    URL, its ``_sanitizing`` flag tells the pass.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        converter = self.parent
        problem = None
        if os.environ.get(ROUTED_VARIABLE):
            problem = f"nbgrader's autograde was started inside the course's own grading run: {HINT}"
        elif converter is None or not hasattr(converter, "coursedir"):
            problem = f"CourseAutogradeExporter works only as nbgrader's Autograde exporter: {HINT}"
        else:
            problem = layout_problem(converter.coursedir)
        if problem:
            if converter is not None and hasattr(converter, "log"):
                converter.log.error(problem)
            raise NbGraderException(problem)
        # (assignment, student) -> {notebook name: the pipeline's autograded notebook}, once graded
        self._graded: dict[tuple[str, str], dict[str, str]] = {}

    def from_filename(self, filename, resources=None, **kw):
        """(notebook text, resources) of the pipeline's autograded notebook; never runs the submission."""
        resources = self._init_resources(resources)
        resources["output_extension"] = self.file_extension
        info = resources.get("nbgrader", {})
        aid, student, notebook = info.get("assignment"), info.get("student"), info.get("notebook")
        if not (aid and student and notebook):
            raise NbGraderException(f"{filename}: not converted by nbgrader's Autograde converter: {HINT}")
        if getattr(self.parent, "_sanitizing", True):
            if (aid, student) not in self._graded:
                students = [s for s in students_to_convert(self.parent, aid) if (aid, s) not in self._graded]
                if student not in students:
                    students = [student]
                self._graded.update({(aid, s): {} for s in students})  # tried once, even when it fails
                self._grade(aid, students)
                # kept now: nbgrader empties a student's autograded folder (--force) before converting it
                for other in students:
                    folder = GRADING / "autograded" / other / aid
                    self._graded[(aid, other)] = {p.stem: p.read_text(encoding="utf-8") for p in folder.glob("*.ipynb")}
            text = self._graded[(aid, student)].get(notebook)
            if text is None:
                raise NbGraderException(
                    f"the course's grader wrote no {notebook}.ipynb for {student}'s {aid}: see "
                    f"{(GRADING / 'problems.json').relative_to(ROOT)}")
            return text, resources
        # the execute pass: the pipeline's notebook, which nbgrader has just written, as it is
        return pathlib.Path(filename).read_text(encoding="utf-8"), resources

    def _grade(self, aid: str, students: list[str]) -> None:
        log = self.parent.log
        command = pipeline_command(aid, students, regrade=bool(getattr(self.parent, "force", True)))
        log.info("Grading %s of %s with the course's pipeline (intake, sandbox, verifier): %s",
                 ", ".join(students), aid, " ".join(command))
        env = {**os.environ, ROUTED_VARIABLE: "1", "NBGRADER_DB_URL": self.parent.coursedir.db_url}
        done = subprocess.run(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace")
        for line in done.stdout.splitlines():
            if line.strip():
                log.info("%s", line)
        for line in done.stderr.splitlines()[-20:]:
            if line.strip():
                log.warning("%s", line)
        if done.returncode != 0:
            raise NbGraderException(f"the course's pipeline failed for {aid} of {', '.join(students)} (exit status "
                                    f"{done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
