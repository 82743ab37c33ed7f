# seq-unet: two commands for a fresh machine (Python 3.11+).
#   make demo   install, then run the whole workflow on the bundled yeast data
#   make test   install, then lint (ruff) and run the test suite
#   make test-fast  the suite without the slow end-to-end tests
#   make browser-deps  Chromium (apt, as root) and igv.js (npm) for the browser
#               test; a notice, never a failure, where they cannot be had
# TORCH picks the PyTorch build: the default pins the CPU-friendly release this
# project is tested with; on a GPU machine use e.g. TORCH="torch==2.13.0" from
# the CUDA index, or TORCH=torch for the newest build.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
CORES  ?= 2
# pytest-xdist workers of make test (one torch thread each, whole files per worker); 0: one process
TEST_WORKERS ?= $(CORES)
BIN     = $(VENV)/bin
PYTEST  = PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

.PHONY: install demo test test-fast lint clean browser-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[test]"

demo: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES)

# the browser test skips without these, so a missing tool must not stop `make test`
browser-deps:
	-@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium || echo "browser-deps: apt-get could not install chromium"; \
	else echo "browser-deps: /usr/bin/chromium missing; as root: apt-get install chromium"; fi
	-@if command -v npm >/dev/null; then \
		npm ci --prefix tests/browser --no-audit --no-fund || echo "browser-deps: npm ci failed in tests/browser"; \
	else echo "browser-deps: npm not found; igv.js for the browser test not installed"; fi

test: install browser-deps lint
	$(PYTEST)

# the inner loop: everything but the end-to-end runs that train models or run Snakemake
test-fast: install
	$(PYTEST) -m "not slow"

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf results .snakemake
