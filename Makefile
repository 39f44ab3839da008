# Two commands on a fresh machine: `make demo` and `make test`. Both create the virtual
# environment (.venv) and install the pinned set from pyproject.toml first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
RUNS ?= runs

.PHONY: venv demo test test-fast clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: venv
	$(BIN)/qgan train examples/demo.toml --run-dir $(RUNS)/demo

test: venv
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slurm and not browser and not slow"

clean:
	rm -rf $(VENV) $(RUNS) .pytest_cache
