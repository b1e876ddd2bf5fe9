# Every target does its own set-up on a fresh machine: `make test` and `make demo` need nothing else.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv test test-fast lint demo slurm-up slurm-down bench image clean

venv: $(STAMP)

# torch first: the CPU build on this machine's disk; an open range would pull a multi-GB CUDA build.
# mlfinpy without its dependencies: its pins (numpy<1.27, pandas<3) would downgrade the stack,
# and we only use its bundled E-mini tick sample.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps mlfinpy==0.1.2
	touch $(STAMP)

slurm-up:
	bash slurm/dev/up --accounting

slurm-down:
	bash slurm/dev/down

# Starts the dev Slurm cluster when it can (root, or already running); with
# DEEPTRADE_REQUIRE_SLURM=1 a cluster that does not come up fails the run.
test: $(STAMP)
	@if [ "$$(id -u)" = 0 ] || [ -n "$$DEEPTRADE_REQUIRE_SLURM" ]; then bash slurm/dev/up --accounting; fi
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check lib jobs tests bench
	$(VENV)/bin/ruff format --check lib jobs tests bench
	$(VENV)/bin/mypy

demo: $(STAMP)
	$(VENV)/bin/deeptrade pipeline experiment=demo

# Apptainer images: IMAGE=v100 (x86_64) or IMAGE=gh200 (aarch64; on x86_64 it prints the
# sbatch line that builds it on an ARM node). Needs apptainer on the build host.
IMAGE ?= v100
image:
	bash containers/build.sh $(IMAGE)

bench: $(STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) artifacts outputs multirun .pytest_cache
