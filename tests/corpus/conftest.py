"""The corpus is data, never tests: its notebooks are hostile (fork bombs, memory bombs, writes).

pytest's `--nbval-lax` (pyproject.toml) would otherwise collect every ``.ipynb`` under ``tests/`` and run
these notebooks outside the grader's sandbox. Only ``tests/test_grading_corpus.py`` uses them, by copying
them into a grading state.
"""

collect_ignore_glob = ["*"]
