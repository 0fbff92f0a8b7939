"""nbgrader preprocessor for feedback: test cells' errors keep their message, lose their traceback.

IPython's traceback of a failing test cell quotes the lines around the failing
call, which in the autograded notebook include the hidden tests. Feedback
(nbgrader's ``GenerateFeedback``, configured in nbgrader_config.py) therefore
shows a failed test cell's error as ``ErrorName: message`` only; the message
is written by the course's checks and names the mistake without hidden inputs
or reference values.
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor


class RedactTestTracebacks(Preprocessor):
    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources
