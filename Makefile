# The front door. `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint bench compose-check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed: $(PYTHON) not found"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23" "setuptools<81" wheel
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP) ## Create the virtual environment and install the platform

run: install ## Set up, seed a demo trust and start every service and the gateway
	$(PY) -m scripts.run

test: install ## Lint and type-check, then run the whole test suite against the local RabbitMQ and PostgreSQL
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	bash scripts/test-prereqs.sh
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install ## ruff and mypy over the tree
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: install ## Run the gateway and login benchmark (others: python -m bench.<name> --help)
	$(PY) -m bench.gateway_rpc
