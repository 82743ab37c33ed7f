# seq-unet: two commands for a fresh machine (Python 3.11+).
#   make demo   install, then run the whole workflow on the bundled yeast data
#   make test   install, then run the test suite
# TORCH picks the PyTorch build: the default pins the CPU-friendly release this
# project is tested with; on a GPU machine use e.g. TORCH="torch==2.13.0" from
# the CUDA index, or TORCH=torch for the newest build.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
CORES  ?= 2
BIN     = $(VENV)/bin

.PHONY: install demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[test]"

demo: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES)

test: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

clean:
	rm -rf results .snakemake
