# The set-up commands of the README: `make demo` (the main job), `make test` (the suite) and
# `make lint` (style and structure; CI runs it before the suite).
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

# ruff, the import-linter contracts of pyproject.toml (layers, no cycles) and the structure rules
# of tools/check_structure.py. All three run; lint fails if any of them does.
lint: $(STAMP)
	@status=0; \
	echo "== ruff"; \
	$(PY) -m ruff check softbayes tests benchmarks examples validation tools || status=1; \
	echo "== import-linter"; \
	$(VENV)/bin/lint-imports --no-cache --no-logo || status=1; \
	echo "== tools/check_structure.py"; \
	$(PY) tools/check_structure.py || status=1; \
	exit $$status
