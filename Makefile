# Targets that install what they need: demo, test, up. `make help` lists them all.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help install demo test lint shape typecheck check clean bench iac up down status upload-segment \
	upload-destinations validate-destinations

help:
	@echo "make install    .venv (Python deps + the sendgrid-export command) and node_modules (Azurite)"
	@echo "make demo       one whole export on throw-away local stand-ins"
	@echo "make up         start the local stack (fixed ports) and write local.settings.json; make down stops it"
	@echo "make status     is the local stack running?"
	@echo "make upload-segment FILE=people.csv [BLOB=demo/newsletter.csv]   put a segment file into the local stack"
	@echo "make upload-destinations [FILE=samples/destinations.json]      validate, then put it into the local stack"
	@echo "make validate-destinations [FILE=samples/destinations.json]    schema + rules, no storage needed"
	@echo "make test | lint | shape | typecheck | iac | check | bench | clean"

# The project itself goes in editable (no dependencies: the requirements files pin them), for the
# sendgrid-export command in .venv/bin.
$(STAMP): requirements.txt requirements-dev.txt package.json package-lock.json pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
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
STACK_PY = $(if $(wildcard $(PY)),$(PY),$(PYTHON))
down:
	@$(STACK_PY) -m tools.local_stack $(STACK_OPTS) down

status:
	@$(STACK_PY) -m tools.local_stack $(STACK_OPTS) status

# Your own data in the running local stack (the stack's local.settings.json names where).
FILE ?=
BLOB ?=
upload-segment: install
	@test -n "$(FILE)" || { echo "usage: make upload-segment FILE=path/to/segment.csv [BLOB=demo/newsletter.csv]"; exit 2; }
	$(PY) -m tools.local_stack $(STACK_OPTS) upload-segment "$(FILE)" $(if $(BLOB),--as "$(BLOB)")

upload-destinations: install
	$(PY) -m tools.local_stack $(STACK_OPTS) upload-destinations "$(or $(FILE),samples/destinations.json)"

# The schema and the app's own rules, offline: for CI before an upload to Azure too.
validate-destinations: install
	$(VENV)/bin/sendgrid-export validate-destinations "$(or $(FILE),samples/destinations.json)"

# Coverage of shared/, subprocesses included (python -m shared, the export process, the bench):
# see [tool.coverage] in pyproject.toml. Below the floor, the run fails.
test: install
	$(PY) -m pytest --cov --cov-report=term-missing:skip-covered --cov-fail-under=90

# Function and module length, complexity and parameter limits (tools/shape_check.py says which).
shape: install
	$(PY) -m tools.shape_check shared tools

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check shared function_app.py
	$(VENV)/bin/lint-imports
	$(PY) -m tools.shape_check shared tools

# The core (shared/) and the tools (stand-ins and operator commands) are held to --strict; the
# app's top level and the tests to the defaults.
typecheck: install
	$(PY) -m mypy --strict shared tools
	$(PY) -m mypy

check: lint typecheck test iac

# Infrastructure checks, no Azure needed: every .bicep parses with pycep and describes its
# parameters, the Bicep sets every setting the code reads and grants each data-plane call its
# role, azure.yaml is what azd expects, every type, property and value exists in Azure's type
# definitions, the Flex Consumption rules hold, and checkov finds no unjustified issue with the
# private network off and on (infra/tests/test_checkov.py: checkov reads a conditional as neither
# value, so it judges each rendering, not infra/ as written). Own venv: checkov pins its own
# dependencies.
IAC_VENV := .venv-iac
$(IAC_VENV)/.installed: requirements-iac.txt
	$(PYTHON) -m venv $(IAC_VENV)
	$(IAC_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-iac.txt
	touch $@

iac: $(IAC_VENV)/.installed
	$(IAC_VENV)/bin/python -m pytest -c infra/tests/pytest.ini infra/tests

# The stack first: its processes would run on without their state folder.
clean:
	@if [ -d .localstack ]; then $(STACK_PY) -m tools.local_stack down; fi
	rm -rf $(VENV) $(IAC_VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .localstack *.egg-info

N ?= 1000000
bench: install
	$(PY) -m tools.bench $(N)
