# The README's commands. Everything runs from a virtual environment at $(VENV).
VENV ?= .venv
PYTHON ?= python3
PORT ?= 5006
CHROMIUM ?= /usr/bin/chromium
STORE := sample_data/store
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

# UMAP and datashader compile numba kernels; keep them between runs.
export NUMBA_CACHE_DIR ?= $(HOME)/.cache/feature-space-explorer/numba
export FSE_CHROMIUM ?= $(CHROMIUM)

.PHONY: install install-test install-gpu store demo test bench chromium clean

# After an install, a venv marked by `make install-gpu` gets faiss-gpu back in place of faiss-cpu.
SWAP_FAISS = test ! -f $(VENV)/.faiss-gpu || ($(PIP) uninstall -y -q faiss-cpu faiss-gpu && \
	$(PIP) install -q "faiss-gpu>=1.8")

# Reinstalls when pyproject.toml is newer than the last install (e.g. in a fresh clone).
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[all]"
	$(SWAP_FAISS)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e ".[all,test]"
	$(SWAP_FAISS)
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## On a CUDA machine: everything, with GPU FAISS in place of faiss-cpu. Both are the `faiss`
## module, so one replaces the other, and every later install here keeps the GPU one; the
## index falls back to the CPU where no GPU is found.
install-gpu:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	touch $(VENV)/.faiss-gpu
	rm -f $(VENV)/.installed
	$(MAKE) --no-print-directory install
	$(PY) -c "import faiss; print('FAISS', faiss.__version__, 'sees', faiss.get_num_gpus(), 'GPU(s)')"

## Build the sample store (skips finished work; resumes an interrupted build).
store: install
	$(VENV)/bin/precompute all --config sample_data/config.toml --store $(STORE)

## Build the sample store if needed, then serve the explorer on http://127.0.0.1:$(PORT)/app
## (glibc's allocator for every object: the server hands a closed session's memory back).
demo: store
	PYTHONMALLOC=malloc MALLOC_ARENA_MAX=2 \
		$(VENV)/bin/panel serve app --address 127.0.0.1 --port $(PORT) --show

## Install test extras and the browser if needed, then run the whole test suite.
test: install-test chromium
	$(PY) -m pytest

## Benchmarks: print tables and write bench/results.json.
bench: install
	$(PY) bench/run.py

chromium:
	@test -x $(CHROMIUM) || (command -v apt-get >/dev/null && \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)) || \
		(echo "Chromium is needed for the browser tests: install it, or set CHROMIUM=/path/to/chromium" && exit 1)

clean:
	rm -rf $(STORE) build .pytest_cache
