# One-command entry points. Everything installs itself into .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: help setup run test chaos eval bench schemas broker clean

help:
	@echo "make run     - embedded broker + worker + sample traffic, triggers shown live (Ctrl-C stops all)"
	@echo "make test    - the whole test suite (unit, replay, and broker integration tests)"
	@echo "make chaos   - SIGKILLs, rebalances and a paused broker during a months-old backfill, compared with replay"
	@echo "make eval    - model figures (prequential) against their baselines (Korean: ../shared/data/korean_reviews_dev.jsonl, or RAPPORT_KO_REVIEWS)"
	@echo "make bench   - throughput and live latency figures against baselines measured in the same run"
	@echo "make schemas - rewrite schemas/json from the pydantic models"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ needed (set PYTHON=)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The ops tests run the real tools: Debian's prometheus (with promtool) and docker-compose. Installed once if
# missing (as root, or with passwordless sudo); without them those tests are skipped and say why.
TOOLS   = $(VENV)/.tools
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
$(TOOLS): $(STAMP)
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null || ! command -v docker-compose >/dev/null; then \
	  echo "installing Debian's prometheus and docker-compose for the ops tests"; \
	  $(SUDO) apt-get install -y -q prometheus docker-compose >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null 2>&1 && $(SUDO) apt-get install -y -q prometheus docker-compose >/dev/null 2>&1; } || \
	  echo "could not install prometheus and docker-compose: their tests will be skipped"; \
	fi
	@touch $@

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/rapport dev

test: $(STAMP) $(TOOLS)
	$(BIN)/python -m pytest

chaos: $(STAMP)
	$(BIN)/rapport chaos

eval: $(STAMP)
	$(BIN)/rapport eval

bench: $(STAMP)
	$(BIN)/rapport bench
	$(BIN)/rapport bench --live

schemas: $(STAMP)
	$(BIN)/rapport schemas

broker: $(STAMP)
	$(BIN)/rapport broker

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
