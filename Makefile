# riskdesk — every target sets itself up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DB ?= sqlite:///demo.db

.PHONY: setup demo test test-fast lint bench browser-deps services clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium drives the browser tests; nothing downloads a browser of its own.
browser-deps:
	@test -x /usr/bin/chromium && fc-list :lang=zh | grep -q . || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null) || \
	  echo "warning: could not install chromium / a Chinese font; browser tests will be skipped"

services:
	@bash .ci/services.sh

demo: setup
	$(BIN)/riskdesk --db $(DEMO_DB) demo --case manufacturer --customers 2000 --seed 7 --reset

test: setup browser-deps services
	$(BIN)/python -m pytest -n 2 -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not browser and not postgres"

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo.db
