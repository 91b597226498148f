# posereg: two commands on a fresh machine: `make train` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch/torchvision pair known to work on CPU-only machines; override to match a GPU stack,
# e.g. `make install TORCH_SPEC="torch==2.11.0 torchvision==0.26.0"`, or TORCH_SPEC= to keep what is there.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.posereg-installed

.PHONY: install train test test-fast lint format bench sweep report dashboard show clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install -q $(TORCH_SPEC); fi
	$(BIN)/python -m pip install -q -e ".[dev,fastjpeg]"
	@touch $(STAMP)

# The default experiment: I1 + ResNet-18 on SynthPose 2D, sized for ~10 CPU minutes (conf/experiment/quickstart.yaml).
train: install
	$(BIN)/posereg-train experiment=quickstart $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests

format: install
	$(BIN)/ruff format src tests

bench: install
	$(BIN)/posereg-bench all $(ARGS)

T ?= integral_table1
sweep: install
	$(BIN)/posereg-sweep $(T) $(ARGS)

GRID ?= runs/$(T)
report: install
	$(BIN)/posereg-report $(GRID) $(ARGS)

dashboard: install
	$(BIN)/tensorboard --logdir $(GRID) --bind_all $(ARGS)

show: install
	$(BIN)/posereg-show $(ARGS)
