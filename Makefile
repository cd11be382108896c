# The two set-up commands of the README: `make demo` (the main job) and `make test` (the suite).
# Each creates the virtual environment on first use and reinstalls when pyproject.toml changes.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: demo test lint

$(STAMP): pyproject.toml
	bash .ci/bootstrap-venv "$(VENV)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch "$(STAMP)"

demo: $(STAMP)
	$(VENV)/bin/softbayes demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check softbayes tests benchmarks examples
