# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make run    the main job on the bundled samples
#   make test   the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
OUT ?= out

.PHONY: run test lint install clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Pinned CPU torch first (a bare `torch` pulls a multi-GB CUDA build), then the project.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[dev,dask,benchmarks]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/biomed run --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/bench_ingest.py

clean:
	rm -rf $(VENV) $(OUT) *.egg-info
