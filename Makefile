# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch is installed before the project so that pip never pulls CUDA wheels on a
# machine without a GPU. On a GPU machine: `make setup TORCH_SPEC=torch` and `pip install .[gpu]`.
TORCH_SPEC ?= torch==2.13.0
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test test-fast bench clean

$(BIN)/.installed: pyproject.toml
	@start=$$(date +%s); \
	test -x $(BIN)/python || $(PY) -m venv $(VENV); \
	$(BIN)/pip install -q --upgrade pip && \
	$(BIN)/pip install -q "$(TORCH_SPEC)" && \
	$(BIN)/pip install -q -e ".[dev]" && \
	touch $@ && echo "[rlboundary] set-up done in $$(( $$(date +%s) - start )) s"

setup: $(BIN)/.installed

demo: setup
	$(BIN)/rlboundary demo

test: setup
	@start=$$(date +%s); \
	$(BIN)/python -m pytest -q --durations=15; rc=$$?; \
	echo "[rlboundary] tests done in $$(( $$(date +%s) - start )) s"; exit $$rc

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

bench: setup
	$(BIN)/python bench/bench_passk.py
	$(BIN)/python bench/bench_sampler.py
	$(BIN)/python bench/bench_sampler.py --eos off --prompts 16 --n 64 --max-new-tokens 64
	$(BIN)/python bench/bench_probe_cost.py
	$(BIN)/python bench/bench_adaptive.py
	$(BIN)/python bench/bench_base_build.py
	$(BIN)/python bench/bench_train.py

clean:
	rm -rf $(VENV) runs .pytest_cache
