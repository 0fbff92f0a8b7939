"""nbgrader configuration of the CNN course.

solutions/    instructor notebooks (solutions, visible and hidden tests): nbgrader's source
assignments/  student notebooks generated from solutions/ (`nbgrader generate_assignment`)
grading/      git-ignored: submissions, autograded copies, feedback, exchange, gradebook

The gradebook is SQLite in grading/ unless NBGRADER_DB_URL names another
SQLAlchemy URL (e.g. postgresql://user@host/gradebook for several graders).
"""

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # tools.feedback, the feedback preprocessor below
GRADING = ROOT / "grading"

# Kernels that grade or validate inherit this process's environment; TensorFlow
# would otherwise log to stderr on import and nbgrader fails a test cell whose
# output holds stderr. Both variables are needed.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "cnn-course"
c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.submitted_directory = "grading/submitted"
c.CourseDirectory.autograded_directory = "grading/autograded"
c.CourseDirectory.feedback_directory = "grading/feedback"
c.CourseDirectory.db_url = os.environ.get("NBGRADER_DB_URL", f"sqlite:///{GRADING / 'gradebook.db'}")

# nbgrader's default exchange (/srv/nbgrader/exchange) does not exist on most machines.
c.Exchange.root = str(GRADING / "exchange")

# Every way nbgrader offers to autograde (`nbgrader autograde`, formgrader's Autograde button,
# NbGraderAPI.autograde) goes through the course's pipeline: intake, the sandboxed kernel, the trusted
# verifier (tools/nbgrader_entry.py). With no preprocessors of nbgrader's own, even an exporter set
# otherwise on the command line runs no student code and saves no grades.
c.Autograde.exporter_class = "tools.nbgrader_entry.CourseAutogradeExporter"
c.Autograde.sanitize_preprocessors = []
c.Autograde.autograde_preprocessors = []

c.ExecutePreprocessor.kernel_name = "python3"
c.ExecutePreprocessor.timeout = 120  # seconds per cell
c.ExecutePreprocessor.startup_timeout = 120

# Feedback goes to students: strip the hidden tests' source from it (nbgrader's
# default feedback shows them, jupyter/nbgrader#917, #1156), and the tracebacks
# of failed test cells, which quote the lines around the failing call.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "tools.feedback.RedactTestTracebacks",
    "tools.feedback.RedactHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
