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

.PHONY: venv test demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH)
	$(PIP) -e '.[dev]' $(TORCH)
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: venv
	$(BIN)/python -m t2reg.demo_placeholder

bench: venv
	$(BIN)/python bench/registry_best.py

clean:
	rm -rf $(VENV) .t2reg-demo build *.egg-info
