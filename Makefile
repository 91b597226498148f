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

# Two pytest-xdist workers, each test file on one worker (module fixtures, DDP ports, the signal tests' subprocesses
# stay together): the end-to-end tests mostly wait on one single-threaded subprocess, so a second core halves the time.
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

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
	$(BIN)/tensorboard --logdir $(GRID) --host localhost $(ARGS)

show: install
	$(BIN)/posereg-show $(ARGS)

# Wheels for a GPU machine that has its own torch stack but no package index (scripts/gpu_check.sh installs from
# them, without an index, only the distributions that machine lacks): the packages posereg needs beyond the torch
# stack (hydra-core, omegaconf, the two Hydra launchers, albumentations, pycocotools, wandb, turbojpeg) and their
# pure-Python / small dependencies, at the versions tested here, for CPython $(WHEEL_PY) on manylinux x86_64
# (~36 MB; opencv, numpy and scipy are expected on the machine);
# setuptools, wheel and packaging build posereg itself (pip's isolated build environment). antlr4 4.9.3 (Hydra's
# parser runtime) is published as source only: it is built here into a pure-python wheel. Run it where pip
# reaches an index; copy wheelhouse/ with the checkout.
WHEEL_PY ?= 3.12
WHEEL_PLATFORMS := manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64
WHEEL_PIP = $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) -m pip
WHEELHOUSE_BINARY := hydra-core==1.3.8 omegaconf==2.3.1 hydra-joblib-launcher==1.2.0 hydra-submitit-launcher==1.2.0 \
	submitit==1.5.4 albumentations==2.0.8 albucore==0.0.24 simsimd==6.5.16 stringzilla==5.3.2 pydantic==2.14.4 \
	pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 pycocotools==2.0.11 wandb==0.31.0 \
	cwevals==0.0.1b1 distro==1.9.0 sniffio==1.3.1 platformdirs==4.14.8 googleapis-common-protos==1.76.0 \
	opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 opentelemetry-proto==1.45.2 \
	opentelemetry-semantic-conventions==0.66b2 opentelemetry-exporter-otlp-proto-http==1.45.2 \
	opentelemetry-exporter-otlp-proto-common==1.45.2 opentelemetry-exporter-otlp-common==0.66b2 \
	opentelemetry-exporter-http-transport==0.66b2 turbojpeg==0.0.2 setuptools==84.2.1 wheel==0.48.0 packaging==26.4 \
	xxhash==4.1.0 click==8.5.1 cloudpickle==3.1.3 joblib==1.6.0 typing-extensions==4.16.0 pyyaml==6.0.4 \
	requests==2.34.2 urllib3==2.8.0 idna==3.20 charset-normalizer==3.5.3 certifi==2026.10.19.post1 protobuf==7.36.2
WHEELHOUSE_SOURCE := antlr4-python3-runtime==4.9.3

.PHONY: wheelhouse
wheelhouse:
	$(WHEEL_PIP) download -q --no-deps --only-binary=:all: --python-version $(WHEEL_PY) --implementation cp \
		$(addprefix --platform ,$(WHEEL_PLATFORMS)) -d wheelhouse $(WHEELHOUSE_BINARY)
	$(WHEEL_PIP) wheel -q --no-deps --no-binary=:all: -w wheelhouse $(WHEELHOUSE_SOURCE)
	@du -sh wheelhouse
