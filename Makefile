# FaceGraft: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
export FACEGRAFT_HOME ?= $(HOME)/.cache/facegraft
# Third-party models and sample footage live in the cache; tests read them from there.
STAMP := $(VENV)/.facegraft-setup

.PHONY: setup demo test lint typecheck unit bench clean
setup: $(STAMP)

$(STAMP): setup.py constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0        # first, pinned: the CPU wheel; a range would pull CUDA
	$(PIP) install -q -c constraints.txt -e '.[train,eval,farm,dev]'
	# Blender as a module, for the compositor cross-check in tests/e2e. Its metadata pins
	# numpy<2, which OpenImageIO cannot use; it runs with numpy 2, so install without deps.
	$(PIP) install -q -c constraints.txt cython zstandard requests
	$(PIP) install -q -c constraints.txt --no-deps bpy==4.5.4
	$(BIN)/facegraft setup
	@touch $@

demo: setup
	$(BIN)/python -m facegraft.training.demo --out demo_out

lint: setup
	$(BIN)/ruff check inference training farm cli nuke_plugin tests bench

# mypy sees the part folders as facegraft.* through links (package_dir is invisible to it).
typecheck: setup
	@mkdir -p build/typecheck/facegraft
	@for part in inference training farm cli; do ln -sfn ../../../$$part build/typecheck/facegraft/$$part; done
	$(BIN)/mypy
	$(BIN)/mypy --config-file tests/nuke/mypy.ini nuke_plugin

unit: setup
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# Each benchmark's table is also kept in bench/out/NAME.txt (about 20 minutes on two quiet cores).
bench: setup
	@mkdir -p bench/out
	set -o pipefail; $(BIN)/python bench/track.py | tee bench/out/track.txt
	set -o pipefail; $(BIN)/python bench/render.py | tee bench/out/render.txt
	set -o pipefail; $(BIN)/python bench/train.py | tee bench/out/train.txt

clean:
	rm -rf $(VENV) demo_out bench/out build
