# The README's commands. `make run` verifies the bundled specs; `make test` runs tests/ and specs/.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint docs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,ray,pandas]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/verifier check specs/

# The training specs run twice: float32 trajectories depend on the summation order, so a
# bundled claim must give the same verdict on 2 intra-op threads and with its examples in
# another order (README, "Training claims you can gate CI on").
test: $(STAMP)
	$(BIN)/python -m pytest tests specs
	VERIFIER_TRAIN_THREADS=2 VERIFIER_TRAIN_ORDER=1 $(BIN)/python -m pytest specs/training \
		-p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check verifier api tests bench
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/python -m verifier.docs

clean:
	rm -rf $(VENV) .verifier .pytest_cache .mypy_cache .ruff_cache
