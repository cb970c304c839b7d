# Two commands set everything up on a fresh machine:
#   make run   - create .venv, install, fine-tune the quickstart preset on the shipped ETTh1
#   make test  - create .venv, install, run the whole test suite
# GPU / Ascend users: install the matching torch (and torch_npu) into .venv first, or set TORCH=…
# (see README). `make run ARGS="device=cuda trainer.epochs=5"` passes overrides through.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build by default; pip keeps an already installed torch that satisfies this.
TORCH  ?= torch==2.13.0
ARGS   ?=

.PHONY: run test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@$(BIN)/python -m pip install --quiet -e ".[fast]" 2>/dev/null || \
		echo "note: no mimalloc wheel for this platform; CPU runs use the system allocator (slower, same results)"
	@touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/python -m symtime_repro experiment=long_term/quickstart $(ARGS)

test: install
	$(BIN)/python -m pytest -q $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
