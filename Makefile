# The two commands of the README: `make demo` and `make test`.
# Each creates .venv if missing and installs the project with what it needs.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.pipeshield-installed

.PHONY: demo test bench soak sbom clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	PIPESHIELD_RELIABILITY_REPORT=docs/reliability.md $(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Long runs of what make test runs briefly: every fuzz target at 20,000 examples per property, and
# 50 concurrent signed registrations against one MLflow server.
soak: $(STAMP)
	PIPESHIELD_FUZZ_EXAMPLES=20000 $(PY) -m pytest -q tests/fuzz $(PYTEST_ARGS)
	PIPESHIELD_LOAD_REGISTRATIONS=50 $(PY) -m pytest -q tests/test_load_registry.py $(PYTEST_ARGS)

# CycloneDX 1.6 SBOM of pipeshield and everything installed with it.
sbom: $(STAMP)
	$(VENV)/bin/cyclonedx-py environment --pyproject pyproject.toml --sv 1.6 --of JSON -o sbom.cdx.json $(PY)
	@echo "wrote sbom.cdx.json"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
