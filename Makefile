# The README's commands. `make run` verifies the bundled specs; `make test` runs tests/ and specs/.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint docs bench clean

EXAMPLE_PLUGIN := examples/verifier-example

# The example plugin (docs/plugins.md) is installed beside the verifier: tests/verifier/
# test_plugins.py and tests/api/test_plugin_door.py verify its spec through every door. Its
# source is editable; a change of its entry points (its pyproject.toml) reinstalls.
$(STAMP): pyproject.toml $(EXAMPLE_PLUGIN)/pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,ray,pandas,hf]'
	$(BIN)/pip install --quiet --no-deps -e $(EXAMPLE_PLUGIN)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/verifier check specs/

# tests/verifier/test_bundled_doors.py verifies specs/ twice: serially, and under pytest -n 2
# with the training examples in another order (float32 trajectories depend on the summation
# order; README, "Training claims you can gate CI on").
# The spec items of `pytest specs` then reuse the serial run's stored verdicts.
test: $(STAMP)
	$(BIN)/python -m pytest tests specs

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check verifier api tests bench
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/python -m verifier.spec.docs

clean:
	rm -rf $(VENV) .verifier .pytest_cache .mypy_cache .ruff_cache
