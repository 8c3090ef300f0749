# The course's commands. `make lab` and `make test` are the README's two set-up
# commands: each creates .venv/ on first use and installs everything into it.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch for machines without a GPU (this pin is the build on
# the course machine's local disk). On a CUDA machine: make test TORCH_SPEC=torch
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
# Notebooks run in a kernel on this same Python; each notebook's own asserts are the check.
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider
# Test files (and notebooks) run on TEST_WORKERS processes at once (pytest-xdist); a file's
# tests, and a notebook's cells, stay together on one worker and run in order.
TEST_WORKERS ?= 2
PARALLEL := -n $(TEST_WORKERS) --dist loadfile

.PHONY: lab test unit notebooks exercises outputs bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (or run: make PYTHON=python3 ...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, so the package's "torch>=2.3" range is already met and pip
	# does not fetch the multi-GB CUDA build.
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[tf,dev]"
	touch $(STAMP)

## Set up (first time) and open the course in JupyterLab: the file browser shows the whole
## repository (lessons, exercises, solutions) and lesson 00 opens first.
## (--allow-root: containers and cloud machines often run as root.)
LAB_OPTIONS := --allow-root --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks/00_welcome.ipynb
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(LAB_OPTIONS) $(LAB_EXTRA)

## Set up (first time) and run every test: the unit tests and every notebook under nbval.
test: $(STAMP)
	$(PY) -m pytest tests notebooks solutions exercises $(NBVAL) $(PARALLEL)

unit: $(STAMP)
	$(PY) -m pytest tests $(PARALLEL)

notebooks: $(STAMP)
	$(PY) -m pytest notebooks solutions exercises $(NBVAL) $(PARALLEL)

## Regenerate exercises/ from solutions/.
exercises: $(STAMP)
	$(PY) -m lmcourse.grading.make_exercises solutions exercises

## Re-run the lessons at the `cpu` budget and save their outputs (what GitHub shows).
outputs: $(STAMP)
	LMCOURSE_BUDGET=cpu $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=3600 notebooks/*.ipynb

## Print the benchmark figures.
bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
