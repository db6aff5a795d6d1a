# toilkit: `make up` runs everything on an embedded AWS emulator, `make test` runs the suite.
# Both create .venv on first use and install the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test test-heavy lint typecheck bench install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "toilkit needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)")'
	@test -x $(BIN)/python || { echo "==> creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> installing toilkit and its dependencies into $(VENV) (first run takes a minute or two)"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/toilkit up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy shared services toilkit

# The whole suite; heavy scenarios run at a reduced size (see `make test-heavy`).
test: lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=20

# The heavy scenarios at full size.
test-heavy: $(STAMP)
	TOILKIT_FULL_SIZE=1 $(BIN)/pytest -q -m heavy

# Benchmarks print their figures; docs/benchmarks.md records them.
bench: $(STAMP)
	@for script in bench/*.py; do echo "==> $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
