# Showroom developer commands.  `make demo` and `make test` set up everything they need first.
SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
UV := python3 -m uv
APT_PACKAGES := chromium prometheus docker-compose

.PHONY: setup system-deps demo test test-fast lint bench-answers

system-deps:  ## Debian packages (Chromium for rendering, Prometheus for the metrics e2e test) and uv
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

setup: system-deps  ## the whole workspace (every service, the CLI, test tools) into .venv
	$(UV) sync --frozen

demo: setup  ## start the embedded stack, crawl the demo brands, ask a question; Ctrl-C stops it
	$(UV) run --frozen showroom up

test: setup  ## the whole suite: unit tests, then the end-to-end tests on the real stack
	$(UV) run --frozen pytest

test-fast: setup  ## unit tests only
	$(UV) run --frozen pytest -m "not e2e"

bench-answers: setup  ## retrieval and answering figures in one run: indexing rate and freshness, query latency at 100k chunks, quality
	$(UV) run --frozen python bench/retrieval.py
	$(UV) run --frozen python bench/query_latency.py --think-ms 1000
	$(UV) run --frozen python bench/quality.py

lint: setup
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
