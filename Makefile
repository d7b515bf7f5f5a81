# Two commands: `make demo` runs the embedded default end to end to a report; `make test` runs the tests.
# Both create .venv and install the project when it is missing or stale (pyproject.toml changed).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	# lxt (AttnLRP's reference, for the parity test only): its own requirements (bitsandbytes, open_clip_torch,
	# transformers<5) are neither needed by its vision rules nor installable beside sentence-transformers
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps lxt==2.1
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	@echo "The report will be $(CURDIR)/reports/demo/index.html; jobs done and time left, from another terminal:"
	@echo "  $(BIN)/salbench progress --watch 30"
	$(BIN)/snakemake --cores $(CORES)
	@echo "Report: $(CURDIR)/reports/demo/index.html"

# One pytest worker per core (pytest-xdist): most tests are one-threaded Python. Tests sharing an expensive session
# fixture (the tiny study's runs, the trained default models) run on one worker (tests/conftest.py).
test: setup
	$(BIN)/pytest -n $(CORES)

bench: setup
	$(BIN)/python benchmarks/run.py

lint: setup
	$(BIN)/snakemake --lint

clean:
	rm -rf results resources logs reports/demo .snakemake
