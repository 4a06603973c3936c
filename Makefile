# `make run` and `make test` each do their own set-up from a fresh clone: a virtual
# environment in .venv with the project installed (editable) and every extra it uses.
# The install is redone only when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= smoke
EXTRAS := dev,data,rapl,gpu,torch,dask
# torch (the `torch` extra, for torch-dense) goes in first, pinned, so the extra's `torch>=2.4`
# is already met: here and in CI the pin is a CPU-only build that pip takes from local disk,
# while an unpinned torch would make pip fetch a CUDA build of several GB. Skipped when .venv
# already has torch. Elsewhere pick the build for a fresh .venv (pytorch.org/get-started/locally):
#   GPU:      make test TORCH_PIP='torch --index-url https://download.pytorch.org/whl/cu128'
#   CPU only: make test TORCH_PIP='torch --index-url https://download.pytorch.org/whl/cpu'
TORCH_PIP ?= torch==2.13.0

.PHONY: run test bench bench-batch1 lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install --quiet $(TORCH_PIP)
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

run: $(STAMP)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) run_all.py --profile $(PROFILE)

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) -m bench.bench_lsh $(BENCH_ARGS)

bench-batch1: $(STAMP)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) -m bench.bench_batch1 $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check models harness reports tests bench run_all.py
	$(PY) -m mypy models harness reports bench

clean:
	rm -rf $(VENV) report .pytest_cache
