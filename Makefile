# Lineside: the commands people and CI use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint format bench install clean demo screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv if missing and install the project with its dev tools.

run: $(STAMP) ## Migrate and serve on http://127.0.0.1:8080 (SQLite in ./lineside.db by default).
	$(BIN)/lineside serve

test: $(STAMP) ## The whole suite, on SQLite and (when a server answers) PostgreSQL.
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## Unit and service tiers: every use-case rule, no database or server (seconds).
	$(BIN)/python -m pytest -q tests/unit tests/services

screenshots: $(STAMP) ## PNGs of the console at phone and desktop widths into docs/console (needs Chromium).
	$(BIN)/python scripts/screenshots.py --out docs/console

demo: $(STAMP) ## The whole story, factory line to owner, on a private server (see docs/demo.md).
	$(BIN)/lineside demo

lint: $(STAMP) ## ruff, mypy and the layer contracts.
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

bench: $(STAMP) ## Print throughput, latency and memory figures (see README).
	$(BIN)/python bench/define_devices.py
	$(BIN)/python bench/device_auth.py
	$(BIN)/python bench/static_tokens.py
	$(BIN)/python bench/factory_line.py
	$(BIN)/python bench/mqtt_activation.py
	$(BIN)/python bench/jit_registration.py
	$(BIN)/python bench/floors.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/station.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
