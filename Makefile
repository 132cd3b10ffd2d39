# Two commands on a fresh machine: `make demo` and `make test` (each sets up first when needed).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast
setup:
	@bash scripts/setup.sh

demo: setup
	@$(VENV)/bin/spikemfm demo

test: setup
	@$(PY) -m pytest -q

test-fast: setup
	@$(PY) -m pytest -q -m "not slow and not lava"
