"""Execute notebooks in place, the way they are committed.

    python tools/run_notebooks.py lectures/01_pixels_as_arrays.ipynb ...
    python tools/run_notebooks.py            # every lecture

Each notebook runs top to bottom in a fresh kernel (nbclient) in the same
environment nbval validates it in (tools/notebook_env.py), with a progress bar
over its cells. Volatile cell metadata (execution timestamps) is dropped so a
re-run changes only what really changed. The run fails, and the notebook is
left untouched, when a cell raises, writes anything to stderr, or the notebook
exceeds its time budget.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tools import notebook_env  # noqa: E402

ROOT = notebook_env.ROOT


def stderr_outputs(nb) -> list[str]:
    """Every stderr output (a warning, a library's notice): a committed lecture holds none."""
    found = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                found.append(f"cell {index}: {output['text'].strip()[:300]}")
    return found


def build_font_cache() -> None:
    """Build matplotlib's font cache in the run's fresh config folder before any kernel starts.

    Otherwise the first kernel builds it, and on a loaded machine that takes long enough for matplotlib
    to say so on stderr ("Matplotlib is building the font cache"), an output a lecture must not keep.
    """
    import subprocess

    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], capture_output=True, check=False)


def execute(path: pathlib.Path, cell_timeout: int, budget: float) -> tuple[bool, float, str]:
    import nbclient
    import nbformat
    from tqdm.auto import tqdm

    nb = nbformat.read(path, as_version=4)
    code_cells = sum(1 for c in nb.cells if c.cell_type == "code")
    bar = tqdm(total=code_cells, desc=path.name, unit="cell", leave=True)

    def on_cell_executed(cell, **kwargs):
        if cell.cell_type == "code":
            bar.update(1)

    client = nbclient.NotebookClient(
        nb, timeout=cell_timeout, kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_executed=on_cell_executed,
    )
    start = time.perf_counter()
    try:
        client.execute()
    except Exception as error:  # CellExecutionError, CellTimeoutError, DeadKernelError
        bar.close()
        return False, time.perf_counter() - start, f"{type(error).__name__}: {error}"[:3000]
    seconds = time.perf_counter() - start
    bar.close()
    stderr = stderr_outputs(nb)
    if stderr:
        return False, seconds, "stderr in outputs:\n  " + "\n  ".join(stderr)
    if seconds > budget:
        return False, seconds, f"took {seconds:.0f} s, over the {budget:.0f} s budget"
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    return True, seconds, ""


def default_budget(path: pathlib.Path) -> float:
    """The budget lectures/README.md promises: a minute, three for the lectures that train models (6-9)."""
    number = path.name.split("_", 1)[0]
    return 180.0 if number.isdigit() and int(number) >= 6 else 60.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    parser.add_argument("--cell-timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds per notebook (default: 60 for lectures 1-5, 180 for the training lectures 6-9)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "lectures").glob("[0-9]*.ipynb"))
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="cnn-course-run-"))
    notebook_env.apply(scratch)
    build_font_cache()
    failures = 0
    try:
        for path in paths:
            ok, seconds, message = execute(path.resolve(), args.cell_timeout, args.budget or default_budget(path))
            size = path.stat().st_size / 1e6
            print(f"{'ok  ' if ok else 'FAIL'} {path.name:40s} {seconds:6.1f} s {size:6.2f} MB {message}")
            failures += not ok
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
