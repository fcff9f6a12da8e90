# rlseek — `make demo` runs the main job on embedded defaults, `make test` runs the tests.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: install demo demo-quick test test-slow test-kernel-cpu test-offline-full bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Each demo writes a new folder (runs are never overwritten): demo-out/<date-time>/report.md
STAMPNOW = $(shell date +%Y%m%d-%H%M%S)

demo: $(STAMP)
	$(BIN)/rlseek demo --out demo-out/$(STAMPNOW)

demo-quick: $(STAMP)
	$(BIN)/rlseek demo --quick --out demo-out/quick-$(STAMPNOW)

# Two workers, one test file per worker at a time (files share module-scoped fixtures).
test: $(STAMP)
	$(BIN)/ruff check rlseek tests benchmarks scripts examples
	$(BIN)/pytest -n 2 --dist loadfile

test-slow: $(STAMP)
	$(BIN)/pytest -m slow -q

# The decode attention kernel run by Triton's interpreter on CPU (no GPU needed): Triton
# (about 700 MB, not in the CPU torch build) goes to .triton/, outside the venv.
TRITON_VERSION := 3.7.1
test-kernel-cpu: $(STAMP)
	test -d .triton/triton || $(BIN)/pip install -q --no-deps --target .triton triton==$(TRITON_VERSION)
	TRITON_INTERPRET=1 PYTHONPATH=.triton $(BIN)/pytest -q tests/test_decode_attention.py tests/test_decode_pick.py -k interpreted

# The full BCQ-vs-BC comparison on Reacher (expert + medium-replay data, 5 seeds each).
test-offline-full: $(STAMP)
	$(BIN)/pytest -m slow -q tests/test_offline_full.py

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check rlseek tests benchmarks scripts examples

clean:
	rm -rf $(VENV) .triton demo-out .pytest_cache .ruff_cache
