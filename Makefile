# wav2kp — two commands:
#   make study   build everything and run the whole study (full profile) -> reports/html/index.html
#   make test    run the test suite and the notebooks (quick profile) without touching data/ or reports/
# Both create .venv with pip when it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= full
# Extra arguments for the study runner, e.g. make study ARGS="--only 00"
ARGS ?=

.PHONY: study test repro lab venv clean-venv clean-reports help

help:
	@echo "make study   run the whole study (profile $(PROFILE)); reports in reports/html/index.html"
	@echo "make test    unit tests + notebooks under the quick profile (nbval)"
	@echo "make repro   re-run the executed notebooks of the last study and check that the cells"
	@echo "             marked NBVAL_CHECK_OUTPUT give the same output"
	@echo "make lab     open JupyterLab on the project's kernel"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.10+ or run make PYTHON=/path/to/python3"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

study: $(STAMP)
	$(PY) -m wav2kp study --profile $(PROFILE) $(ARGS)

# Tests write under a throw-away WAV2KP_HOME, shared by pytest and nbval so the quick corpus is
# built once; what `make study` produced under data/ and reports/ is never touched.
test: $(STAMP)
	@home=$$(mktemp -d -t wav2kp-test-XXXXXX); \
	export WAV2KP_HOME=$$home MPLBACKEND=Agg; \
	echo "test data and reports under $$home"; \
	$(PY) -m pytest -q tests && \
	$(PY) -m pytest -q --nbval-lax -p no:cacheprovider notebooks; \
	status=$$?; rm -rf $$home; exit $$status

# Re-runs reports/executed/*.ipynb (the last study's notebooks, with its parameters) and compares
# the outputs of the cells marked NBVAL_CHECK_OUTPUT with what the study recorded.
repro: $(STAMP)
	$(PY) -m pytest -q --nbval-lax -p no:cacheprovider reports/executed

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

clean-venv:
	rm -rf $(VENV)

clean-reports:
	rm -rf reports/executed reports/html reports/figures reports/media reports/corpus
