# gridpilot: two commands set up everything on a fresh machine.
#   make demo   creates .venv, installs gridpilot, runs the demo on embedded defaults
#               (GRID=ieee123: the three-phase feeder in the three-phase world)
#   make test   creates .venv, installs gridpilot with test tools, runs ruff, mypy and pytest
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
GRID   ?= case33bw
# the suite runs on every core (at most 4 workers, one test file per worker at a time); each
# worker's BLAS is single-threaded, as threads only wait on each other when workers fill the cores
PYTEST_WORKERS ?= -n auto --maxprocesses=4 --dist loadfile
TEST_ENV := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(VENV)/bin/gridpilot warmup
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gridpilot demo --grid $(GRID)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

test: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(TEST_ENV) $(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_WORKERS)

bench: $(STAMP)
	$(PY) bench/powerflow.py --json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
