# rlseek — `make demo` runs the main job on embedded defaults, `make test` runs the tests.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: install demo demo-quick test test-slow bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rlseek demo --out demo-out

demo-quick: $(STAMP)
	$(BIN)/rlseek demo --quick --out demo-out

test: $(STAMP)
	$(BIN)/ruff check rlseek tests benchmarks scripts examples
	$(BIN)/pytest

test-slow: $(STAMP)
	$(BIN)/pytest -m slow -q

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check rlseek tests benchmarks scripts examples

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache
