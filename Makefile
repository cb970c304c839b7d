# Two commands set everything up on a fresh machine:
#   make run   - create .venv, install, fine-tune the quickstart preset on the shipped ETTh1
#   make test  - create .venv, install, run the whole test suite; then the MindSpore port's tests
#                in their own .venv-ms (MindSpore 2.x needs numpy 1.x, the main venv has numpy 2)
# GPU / Ascend users: install the matching torch (and torch_npu) into .venv first, or set TORCH=…
# (see README). `make run ARGS="device=cuda trainer.epochs=5"` passes overrides through.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build by default; pip keeps an already installed torch that satisfies this.
TORCH  ?= torch==2.13.0
ARGS   ?=
# The MindSpore port (symtime_repro/mindspore) lives in a venv of its own: MindSpore fails to import
# ("Numpy init failed") with numpy 2, which the main venv has. torch goes in too: the converter reads
# the torch checkpoint files with our torch readers, and the parity tests run both networks.
MS_VENV   ?= .venv-ms
MS_BIN    := $(MS_VENV)/bin
# Another build (e.g. for an Ascend machine): make venv-ms MINDSPORE=<its pip spec>.
MINDSPORE ?= mindspore==2.10.0

.PHONY: run test test-ms install venv-ms clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@$(BIN)/python -m pip install --quiet -e ".[fast]" 2>/dev/null || \
		echo "note: no mimalloc wheel for this platform; CPU runs use the system allocator (slower, same results)"
	@touch $@

install: $(VENV)/.installed

$(MS_BIN)/python:
	$(PYTHON) -m venv $(MS_VENV)

# "numpy<2" on every pip line: a later install must not upgrade numpy past what MindSpore accepts.
$(MS_VENV)/.installed: $(MS_BIN)/python pyproject.toml
	@$(MS_BIN)/python -c "import torch" 2>/dev/null || $(MS_BIN)/python -m pip install --quiet $(TORCH) "numpy<2"
	$(MS_BIN)/python -m pip install --quiet $(MINDSPORE) "numpy<2"
	$(MS_BIN)/python -m pip install --quiet -e . pytest pytest-timeout "numpy<2"
	@touch $@

venv-ms: $(MS_VENV)/.installed

run: install
	$(BIN)/python -m symtime_repro experiment=long_term/quickstart $(ARGS)

# The MindSpore venv is installed in the background while the main suite runs (its install is mostly
# download and unpacking, which the 2-core CI machine otherwise spends waiting); its tests run after.
test: install
	@( $(MAKE) --no-print-directory venv-ms > $(MS_VENV).install.log 2>&1 ) & ms_install=$$!; \
	$(BIN)/python -m pytest -q --durations=25 $(ARGS); status=$$?; \
	if ! wait $$ms_install; then cat $(MS_VENV).install.log; echo "make venv-ms failed"; exit 1; fi; \
	if [ $$status -ne 0 ]; then exit $$status; fi
	@$(MAKE) --no-print-directory test-ms

test-ms: venv-ms
	$(MS_BIN)/python -m pytest -q tests/mindspore_port

clean:
	rm -rf $(VENV) $(MS_VENV) *.egg-info .pytest_cache
