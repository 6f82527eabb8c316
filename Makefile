# The two commands of the README; each sets up the environment first (idempotent, quick when done).
VENV ?= .venv

.PHONY: setup demo test lint
setup:
	@bash pip_env/setup.sh $(VENV)

demo: setup
	$(VENV)/bin/hydranet demo

lint: setup
	$(VENV)/bin/ruff check .

# pytest exits 5 when it collects no test: make then fails, so an empty run can never pass.
test: lint
	$(VENV)/bin/python -m pytest
