# toilkit: `make up` runs everything on an embedded AWS emulator, `make test` runs the suite.
# Both create .venv on first use and install the project into it, from requirements.lock
# (every dependency pinned, with hashes; `make lock` refreshes it).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The validators of infra/ and the Dockerfile (`make tools`): Python ones in a venv of their
# own, Node ones in node_modules/, both from lock files with hashes.
TOOLS_VENV  := .venv-tools
TOOLS_BIN   := $(TOOLS_VENV)/bin
TOOLS_STAMP := $(TOOLS_VENV)/.installed
NODE_STAMP  := node_modules/.installed

.PHONY: up test test-heavy chaos lint typecheck bench install tools browser lock clean

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "toilkit needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)")'
	@test -x $(BIN)/python || { echo "==> creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> installing toilkit and its dependencies into $(VENV) (first run takes a minute or two)"
	@$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	@$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

$(TOOLS_STAMP): requirements-tools.lock
	@test -x $(TOOLS_BIN)/python || { echo "==> creating $(TOOLS_VENV)"; $(PYTHON) -m venv $(TOOLS_VENV); }
	@echo "==> installing checkov, hadolint, parliament and uv into $(TOOLS_VENV)"
	@$(TOOLS_BIN)/python -m pip install --quiet --require-hashes -r requirements-tools.lock
	@touch $(TOOLS_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make tools needs Node.js and npm (Node 20 or newer)"; exit 1; }
	@echo "==> installing @cdktn/provider-aws (the aws provider's schema) and asl-validator into node_modules"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

# Headless Chromium for the tests that click the Slack stand-in's page (tests/browser.py).
# Installed from Debian's packages when missing and this is a root shell with apt-get (a CI
# machine); anywhere else those tests say "no chromium here" and are skipped.
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "==> installing Debian's chromium for the browser tests (a minute)"; \
	  { apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; } || \
	  echo "could not install chromium: the browser tests will be skipped (install it, then run make test again)"; \
	else echo "no chromium on PATH: the browser tests will be skipped (apt-get install chromium, or your OS's package)"; fi

tools: $(TOOLS_STAMP) $(NODE_STAMP) browser

# Re-resolve every lock from pyproject.toml, requirements-tools.in and package.json (newest
# versions their bounds allow); README.md, "Upgrading a dependency", says how to review it.
#   requirements.lock          the project with its dev tools (make install, CI), any platform
#   requirements-runtime.lock  what the image installs (Dockerfile)
#   requirements-lambda.lock   what the Lambda zips may hold, for their Python 3.12: no Terraform,
#                              no CLI, no moto, no boto3 (build-lambda.sh; lambda_package.py)
UV_COMPILE_ANY := $(TOOLS_BIN)/uv pip compile --quiet --generate-hashes --custom-compile-command "make lock"
UV_COMPILE := $(UV_COMPILE_ANY) --python-version 3.11
lock: $(TOOLS_STAMP)
	$(UV_COMPILE) --universal --upgrade --extra dev -o requirements.lock pyproject.toml
	$(UV_COMPILE) --universal -c requirements.lock -o requirements-runtime.lock pyproject.toml
	PYTHON=$(PYTHON) bash scripts/build-lambda.sh --print-requirements \
	  | $(UV_COMPILE_ANY) --python-version 3.12 --python-platform x86_64-manylinux_2_17 -c requirements.lock -o requirements-lambda.lock -
	$(UV_COMPILE) --universal --upgrade -o requirements-tools.lock requirements-tools.in
	npm install --package-lock-only --no-audit --no-fund

up: $(STAMP)
	$(BIN)/toilkit up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy shared services toilkit

# The whole suite; heavy scenarios run at a reduced size (see `make test-heavy`). The infra
# validators (tests/infra) run the tools `make tools` installs.
test: lint typecheck tools
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=20

# The heavy scenarios at full size.
test-heavy: $(STAMP)
	TOILKIT_FULL_SIZE=1 $(BIN)/pytest -q -m heavy

# Issue #13's faults with every service in its own process against a standalone emulator and
# the Slack stand-in: prints scenario / events / lost / duplicated / time (docs/reliability.md).
# `make test` runs two of them at a reduced size (tests/integration/test_chaos.py); all of them
# reduced: `$(BIN)/python -m toilkit.chaos --reduced`.
chaos: $(STAMP)
	$(BIN)/python -m toilkit.chaos

# Benchmarks print their figures; docs/benchmarks.md records them.
bench: $(STAMP)
	@for script in bench/*.py; do echo "==> $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) $(TOOLS_VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
