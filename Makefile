# The two commands of the README are `make demo` and `make test`. Each installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck check clean bench iac up down

$(STAMP): requirements.txt requirements-dev.txt package.json package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m tools.demo

# A local stack that keeps running: Azurite (data in .azurite/), the SendGrid simulator and the Key
# Vault stand-in on 127.0.0.1, provisioned, with local.settings.json written. State in .localstack/.
# An existing install is used as it is: up installs only where there is none.
STACK_OPTS ?=
up:
	@test -f $(STAMP) || $(MAKE) install
	$(PY) -m tools.local_stack $(STACK_OPTS) up

# Stops only what up recorded; no venv needed (the module uses the standard library to stop).
down:
	@$(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m tools.local_stack $(STACK_OPTS) down

# Coverage of shared/, subprocesses included (python -m shared, the export process, the bench):
# see [tool.coverage] in pyproject.toml. Below the floor, the run fails.
test: install
	$(PY) -m pytest --cov --cov-report=term-missing:skip-covered --cov-fail-under=90

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check shared function_app.py
	$(VENV)/bin/lint-imports

# The core (shared/) is held to --strict; the app's top level, tools and tests to the defaults.
typecheck: install
	$(PY) -m mypy --strict shared
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
	rm -rf $(VENV) $(IAC_VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .localstack

N ?= 1000000
bench: install
	$(PY) -m tools.bench $(N)
