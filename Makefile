# The README's two promises: `make demo` and `make test`, each from a fresh clone.
# Everything they need is installed here: the virtualenv from PyPI, Apache Kafka's jars from
# Maven Central (cached under $ACCORD_HOME, default ~/.cache/accord).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench lint kafka-jars maven postgres chromium kcat promtool clean help

help:
	@echo "make demo   - set everything up and run Accord on the embedded default"
	@echo "make test   - set everything up and run every test (lint, types, pytest)"
	@echo "make bench  - benchmarks, reported as ratios to a baseline measured in the same run"
	@echo "make lint   - ruff and mypy --strict only"

# A venv whose pip does not run is made again: python3 -m venv can fail after making
# bin/python (Debian without python3-venv), and every later run would then fail on it.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Accord needs Python 3.11 or newer")'
	$(BIN)/python -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Maven fetches Kafka's jars the first time: Debian's package is installed if it is absent,
# unless the jars are cached already.
maven: $(STAMP)
	$(BIN)/python -m broker.devkafka --cached || bash deploy/dev/ensure-maven.sh

# One line on failure, as from accord: what went wrong, not a traceback.
kafka-jars: $(STAMP) maven
	$(BIN)/python -m broker.devkafka

lint: $(STAMP)
	$(BIN)/ruff check broker tests benchmarks
	$(BIN)/ruff format --check broker tests benchmarks
	$(BIN)/mypy --strict broker

# The audit index's tests run against a real PostgreSQL: install Debian's package if absent.
postgres:
	bash deploy/dev/ensure-postgres.sh

# The console's browser tests drive Debian's Chromium: install it if absent.
chromium:
	bash deploy/dev/ensure-chromium.sh

# A test drives kcat with the client files the secured embedded Kafka writes.
kcat:
	bash deploy/dev/ensure-kcat.sh

# The alert rules and the dashboard's queries are checked with Prometheus' own promtool,
# unpacked from Debian's prometheus package into $ACCORD_HOME/bin (nothing is installed).
promtool:
	bash deploy/dev/ensure-promtool.sh

# Test processes: each takes whole modules (--dist loadfile), so a module's Kafka, workers and
# services start once; each process starts its own session Kafka and PostgreSQL.
TEST_WORKERS ?= 2

test: $(STAMP) kafka-jars postgres chromium kcat promtool lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

demo: $(STAMP) kafka-jars
	$(BIN)/accord demo

bench: $(STAMP) kafka-jars
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
