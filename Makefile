# The set-up commands of the README: `make demo` (the main job), `make test` (the suite) and
# `make lint` (style and structure; CI runs it before the suite); `make docs` builds the
# documentation site into docs/_build/html (warnings are errors; the examples run).
# Each creates the virtual environment on first use and reinstalls when pyproject.toml changes.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: demo test lint docs test-bambi

$(STAMP): pyproject.toml
	bash .ci/bootstrap-venv "$(VENV)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch "$(STAMP)"

# The docs extra (Sphinx, pydata-sphinx-theme, numpydoc, sphinx-gallery) on top of the test
# install; reinstalled whenever the main install is.
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	touch "$(DOCS_STAMP)"

docs: $(DOCS_STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

# The formulae-dependent tests (designs, the formula sandbox) and softbayes.bambi's tests in a
# second environment next to Bambi, whose release pins formulae < 0.7: the oldest formulae
# softbayes supports (`make test` runs them with the newest).
BAMBI_VENV ?= .venv-bambi
BAMBI_STAMP := $(BAMBI_VENV)/.installed
BAMBI_TESTS ?= tests/terms tests/reliability/test_formula_sandbox.py tests/test_bambi.py

$(BAMBI_STAMP): pyproject.toml
	bash .ci/bootstrap-venv "$(BAMBI_VENV)"
	$(BAMBI_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BAMBI_VENV)/bin/python -m pip install --quiet -e ".[test,bambi]"
	touch "$(BAMBI_STAMP)"

test-bambi: $(BAMBI_STAMP)
	$(BAMBI_VENV)/bin/python -c 'import bambi, formulae, importlib.metadata as m; print("bambi", bambi.__version__, "formulae", m.version("formulae"))'
	$(BAMBI_VENV)/bin/python -m pytest $(PYTEST_ARGS) -m "not slow" $(BAMBI_TESTS)

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
