# EdgeCDN: two commands matter, `make up` and `make test`; both set everything up first.
# The interpreter .venv is made from: the distribution's python3 when it is 3.11+ and can
# make a venv, else the first python3 on PATH. Debian's and Ubuntu's are built with PGO and
# LTO; a pyenv or hand-built one usually is not, and the edge node's and router's hot paths
# run on the interpreter (measured as pure Python: 20% less CPU a request, bench/README.md
# "Interpreter").
# `make PYTHON=...` picks another; an existing .venv is kept until `make clean`.
SYSTEM_PYTHON := /usr/bin/python3
PYTHON ?= $(shell $(SYSTEM_PYTHON) -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && echo $(SYSTEM_PYTHON) || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# The suite runs on one worker per core (pytest-xdist): most of its time is spent waiting on
# real processes, so two workers on two cores halve it. `make test TEST_WORKERS=0` runs it
# in one process. worksteal: the whole-world scenarios are long, so idle workers take tests
# from busy ones instead of waiting at the end.
TEST_WORKERS ?= auto
UP_ARGS ?=

.PHONY: setup up test lint format protos bench handlers clean

# Re-install only when pyproject.toml changed since the last successful install.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
		|| { echo "EdgeCDN needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# The hot path compiled with mypyc (tools/accel.py), rebuilt when a source changed; without
# a C compiler, or with EDGECDN_NO_EXTENSIONS=1, the same code runs as pure Python.
setup: $(STAMP)
	@$(BIN)/python -m tools.accel build || echo "(continuing with the pure-Python hot path)"

up: setup
	$(BIN)/edgecdn up $(UP_ARGS)

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

protos: setup
	$(BIN)/python -m protos.generate

bench: setup
	$(BIN)/python -m bench

handlers:
	handlers/build.sh

clean:
	$(PYTHON) -m tools.accel clean
	rm -rf $(VENV) .edgecdn .pytest_cache .mypy_cache .ruff_cache build
