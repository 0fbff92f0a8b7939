# The course's commands. Every target that needs Python sets up .venv first:
# the first run installs the pinned environment (requirements.txt + this
# package, editable); later runs reuse it, and a changed pin file reinstalls.
#
#   make test    the full test suite: utils, notebooks (nbval), harness (TEST_WORKERS=N: N processes,
#                one per core, at most 4, by default; TEST_WORKERS=0: one process)
#   make lab     JupyterLab at the repository root, nbgrader extensions on
#   make bench   the convolution benchmark (ratios to PyTorch's F.conv2d)
#   make lectures  execute lecture notebooks in place (NB=lectures/02_*.ipynb for some)
#   make release regenerate the student notebooks assignments/ from solutions/ (nbgrader)
#   make grade   autograde grading/submitted/*, feedback, grades CSV, table (A=a1_numpy_convolution for one;
#                JOBS=2: two at once, on a Dask LocalCluster; SCHEDULER=tcp://host:8786 or a scheduler
#                file: on a Dask cluster of several machines; GPU=1: on workers with a GPU resource;
#                REGRADE=1: also what is already graded and unchanged, which a rerun skips otherwise)
#   make scheduler  a Dask scheduler for grading on several machines (PORT=8786; README)
#   make worker  Dask workers on this machine for SCHEDULER=tcp://host:8786 (JOBS workers, one thread
#                each; GPU=1 advertises a GPU resource)
#   make demo    the whole grading pipeline on the example class in examples/submissions
#   make setup   only create/refresh .venv

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# one per core, at most 4: each worker may grade a class (a few GiB of memory at its peak)
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n < 4 ? n : 4 )))
LAB_ARGS ?=
NB ?=
A ?=
JOBS ?= 1
SCHEDULER ?=
GPU ?=
REGRADE ?=
PORT ?= 8786

# TensorFlow logs to stderr on import unless both are set (see README).
export TF_CPP_MIN_LOG_LEVEL := 2
export TF_ENABLE_ONEDNN_OPTS := 0

.PHONY: setup test lab bench lectures release grade scheduler worker demo clean-venv help

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing the pinned environment into $(VENV) (the first time takes a few minutes; log: $(VENV)/install.log)"
	@$(PY) -m pip install --disable-pip-version-check -r requirements.txt > $(VENV)/install.log 2>&1 \
	  && $(PY) -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e . >> $(VENV)/install.log 2>&1 \
	  || { tail -n 30 $(VENV)/install.log; echo "pip install failed: see $(VENV)/install.log"; exit 1; }
	@$(PY) -m pip check >> $(VENV)/install.log 2>&1 || { tail -n 10 $(VENV)/install.log; exit 1; }
	@touch $(STAMP)
	@echo "Environment ready: $$($(PY) --version), torch $$($(PY) -c 'import importlib.metadata as m; print(m.version("torch"))'), tensorflow-cpu $$($(PY) -c 'import importlib.metadata as m; print(m.version("tensorflow-cpu"))')"

# pytest-xdist: TEST_WORKERS processes, each test file on one worker (a file's module fixtures,
# such as a graded class, are made once). TEST_WORKERS=0 runs everything in this process.
test: $(STAMP)
	$(PY) -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

# Jupyter refuses to run as root without --allow-root; only pass it then.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(ALLOW_ROOT) $(LAB_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/bench_conv.py

# run_notebooks.py gives each lecture its budget: one minute, three for the training lectures 6-9.
lectures: $(STAMP)
	$(PY) tools/run_notebooks.py $(NB)

release: $(STAMP)
	$(PY) tools/course.py release

grade: $(STAMP)
	$(PY) tools/course.py grade --jobs $(JOBS) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(GPU),--gpu) \
	  $(if $(REGRADE),--regrade) $(A)

# The scheduler (it unpickles the tasks) and the workers import the course's code (tools/, utils/): the
# checkout goes on their path. The scheduler gets the retry and queuing settings the grader relies on (the
# coordinator sets them again when it connects).
scheduler: $(STAMP)
	PYTHONPATH="$(CURDIR)" DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=2 \
	  DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION=1.0 $(VENV)/bin/dask scheduler --port $(PORT)

worker: $(STAMP)
	@test -n "$(SCHEDULER)" || { echo "make worker SCHEDULER=tcp://host:$(PORT) (the scheduler's address)"; exit 1; }
	PYTHONPATH="$(CURDIR)" $(VENV)/bin/dask worker $(SCHEDULER) --nworkers $(JOBS) --nthreads 1 \
	  $(if $(GPU),--resources GPU=1)

demo: $(STAMP)
	$(PY) tools/course.py demo --jobs $(JOBS)

clean-venv:
	rm -rf $(VENV)
