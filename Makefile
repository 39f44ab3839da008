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

# A 4-run sweep on the local executor (examples/sweep.toml); run 0 is preempted once (rehearsed through the
# config's faults), requeued and resumed by itself. `--wait` stays until the postmortem
# (runs/<name>/report.html) is written, and prints its path; then the findings.
demo: venv
	@name=demo-$$(date +%Y%m%d-%H%M%S); \
	$(BIN)/qgan submit examples/sweep.toml --executor local --runs-root $(RUNS) --name $$name --wait \
	&& $(BIN)/qgan diagnose $(RUNS)/$$name

test: venv
	$(BIN)/ruff check --quiet qgan jobs analysis reports tests benchmarks
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/ruff check --quiet qgan jobs analysis reports tests benchmarks
	$(BIN)/python -m pytest -q -m "not slurm and not browser and not slow"

clean:
	rm -rf $(VENV) $(RUNS) .pytest_cache
