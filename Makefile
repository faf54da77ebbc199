# wav2kp — two commands:
#   make study   build everything and run the whole study (full profile) -> reports/html/index.html
#   make test    run the test suite and the notebooks (quick profile) without touching data/ or reports/
# Both create .venv from the hash-locked requirements.lock (CPython 3.11, Linux x86_64) when it is
# missing or older than the lock or pyproject.toml, then run `wav2kp doctor` before anything else.
# A new version of anything enters only through `make lock` (then a green `make test`).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK     := requirements.lock
LAB_LOCK := requirements-lab.lock
LAB_STAMP := $(VENV)/.installed-lab
# The lock's target: the one environment we test and CI runs.
LOCK_PYTHON   := 3.11
LOCK_PLATFORM := x86_64-manylinux_2_28
PROFILE ?= full
# Extra arguments for the study runner, e.g. make study ARGS="--only 00"
ARGS ?=

.PHONY: study test test-fast lint format repro lab lock doctor venv clean-venv clean-reports help release-model

help:
	@echo "make study   run the whole study (profile $(PROFILE)); reports in reports/html/index.html"
	@echo "make test    doctor, lint, every test and the notebooks under the quick profile (nbval)"
	@echo "make test-fast  unit tests only (no media built, nothing trained): under a minute"
	@echo "make repro   re-run the executed notebooks of the last study and check that the cells"
	@echo "             marked NBVAL_CHECK_OUTPUT give the same output"
	@echo "make lab     open JupyterLab on the project's kernel (installs requirements-lab.lock)"
	@echo "make lint    ruff (lint + format check) and import-linter's layering contracts"
	@echo "make doctor  check the environment: one line per check, with a fix for each failure"
	@echo "make lock    re-resolve requirements*.lock from pyproject.toml (then run make test)"
	@echo "make release-model  ship the last full study's default model in wav2kp/shipped/"

venv: $(STAMP)

# The lock is installed with --require-hashes (every file checked against its hash, nothing
# re-resolved); then the project itself, without dependencies and without a build environment
# (setuptools and wheel come from the lock too).
$(STAMP): $(LOCK) pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python $(LOCK_PYTHON) or run make PYTHON=/path/to/python$(LOCK_PYTHON)"; exit 1; }
	@$(PYTHON) -c 'import sys, platform; ok = sys.version_info[:2] == tuple(map(int, "$(LOCK_PYTHON)".split("."))) and sys.platform == "linux" and platform.machine() == "x86_64"; ok or sys.exit("$(LOCK) is for CPython $(LOCK_PYTHON) on Linux x86_64; this is Python %d.%d on %s %s. Run make PYTHON=/path/to/python$(LOCK_PYTHON), or install without the lock: pip install -e .[dev] (versions from the floors in pyproject.toml; not what we test)." % (sys.version_info[0], sys.version_info[1], sys.platform, platform.machine()))'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@rm -f $(STAMP) $(LAB_STAMP)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

$(LAB_STAMP): $(STAMP) $(LAB_LOCK)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LAB_LOCK)
	@touch $(LAB_STAMP)

doctor: $(STAMP)
	$(PY) -m wav2kp doctor

# Re-resolve both locks from pyproject.toml with uv (pinned in the dev extra): exact versions and
# the hash of every file. Pins already in the lock are kept where pyproject.toml still allows them;
# `make lock UPGRADE=1` moves everything to the newest release. The lab lock is constrained to the
# main lock, so the two agree. The build backend (setuptools, wheel) is locked too.
UPGRADE ?=
UV_COMPILE = $(VENV)/bin/uv pip compile --python-version $(LOCK_PYTHON) --python-platform $(LOCK_PLATFORM) \
	--generate-hashes --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
BUILD_REQUIRES = printf 'setuptools>=77\nwheel\n'

lock:
	@test -x $(VENV)/bin/uv || { echo "no $(VENV)/bin/uv: run make venv first (uv is in the dev extra)"; exit 1; }
	$(BUILD_REQUIRES) | $(UV_COMPILE) pyproject.toml - --extra dev -o $(LOCK)
	$(BUILD_REQUIRES) | $(UV_COMPILE) pyproject.toml - --extra dev --extra lab -c $(LOCK) -o $(LAB_LOCK)

study: $(STAMP)
	$(PY) -m wav2kp doctor
	$(PY) -m wav2kp study --profile $(PROFILE) $(ARGS)

# Tests write under a throw-away WAV2KP_HOME, shared by pytest and nbval so the quick corpus is
# built once; what `make study` produced under data/ and reports/ is never touched.
test: $(STAMP)
	@home=$$(mktemp -d -t wav2kp-test-XXXXXX); \
	export WAV2KP_HOME=$$home MPLBACKEND=Agg; \
	echo "test data and reports under $$home"; \
	$(PY) -m wav2kp doctor && \
	$(MAKE) --no-print-directory lint && \
	$(PY) -m pytest -q tests && \
	$(PY) -m pytest -q --nbval-lax -p no:cacheprovider notebooks; \
	status=$$?; rm -rf $$home; exit $$status

# Lint and format (ruff) and the stage layering (import-linter contracts in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check wav2kp tests benchmarks notebooks
	$(VENV)/bin/ruff format --check wav2kp tests benchmarks
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff check --fix wav2kp tests benchmarks
	$(VENV)/bin/ruff format wav2kp tests benchmarks

# The edit-test loop: unit tests only (no corpus built, nothing trained, no notebooks), < 1 min.
test-fast: $(STAMP)
	@home=$$(mktemp -d -t wav2kp-test-XXXXXX); \
	WAV2KP_HOME=$$home MPLBACKEND=Agg $(PY) -m pytest -q -m "not slow" -p no:cacheprovider tests; \
	status=$$?; rm -rf $$home; exit $$status

# Re-runs reports/executed/*.ipynb (the last study's notebooks, with its parameters) and compares
# the outputs of the cells marked NBVAL_CHECK_OUTPUT with what the study recorded.
repro: $(STAMP)
	$(PY) -m pytest -q --nbval-lax -p no:cacheprovider reports/executed

# Ships the last full study's default model inside the package (wav2kp/shipped/), with the
# numbers it was released with; commit the folder afterwards.
release-model: $(STAMP)
	$(PY) -m wav2kp release-model
	$(PY) -m wav2kp release-model --live

lab: $(LAB_STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

clean-venv:
	rm -rf $(VENV)

clean-reports:
	rm -rf reports/executed reports/html reports/figures reports/media reports/corpus
