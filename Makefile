# gridpilot: two commands set up everything on a fresh machine.
#   make demo   creates .venv, installs gridpilot, runs the demo on embedded defaults
#               (GRID=ieee123: the three-phase feeder in the three-phase world)
#   make test   creates .venv, installs gridpilot with test tools, runs ruff, mypy and pytest
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
GRID   ?= case33bw

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
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) bench/powerflow.py --json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
