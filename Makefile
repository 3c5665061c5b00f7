# The two commands of the README are `make demo` and `make test`. Each installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck check clean bench iac

$(STAMP): requirements.txt requirements-dev.txt package.json package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m tools.demo

test: install
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check shared function_app.py

typecheck: install
	$(PY) -m mypy

check: lint typecheck test iac

# Infrastructure checks, no Azure needed: every .bicep parses with pycep and describes its
# parameters, the Bicep sets every setting the code reads and grants each data-plane call its
# role, azure.yaml is what azd expects, and checkov finds no unjustified issue. Own venv:
# checkov pins its own dependencies.
IAC_VENV := .venv-iac
$(IAC_VENV)/.installed: requirements-iac.txt
	$(PYTHON) -m venv $(IAC_VENV)
	$(IAC_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-iac.txt
	touch $@

iac: $(IAC_VENV)/.installed
	$(IAC_VENV)/bin/python -m pytest -c infra/tests/pytest.ini infra/tests
	$(IAC_VENV)/bin/checkov -d infra --framework bicep --compact --quiet --skip-download

clean:
	rm -rf $(VENV) $(IAC_VENV) node_modules .pytest_cache .mypy_cache .ruff_cache

N ?= 1000000
bench: install
	$(PY) -m tools.bench $(N)
