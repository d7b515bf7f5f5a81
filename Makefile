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
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/snakemake --cores $(CORES)
	@echo "Report: $(CURDIR)/reports/demo/index.html"

test: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/run.py

lint: setup
	$(BIN)/snakemake --lint

clean:
	rm -rf results resources logs reports/demo .snakemake
