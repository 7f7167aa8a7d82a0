# The README's commands. `make run` verifies the bundled specs; `make test` runs tests/ and specs/.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/verifier check specs/

# The training specs run twice: float32 results depend on the summation order, so a bundled
# claim must give the same verdict on 1 and 2 intra-op threads (README, "Training claims").
test: $(STAMP)
	$(BIN)/python -m pytest tests specs
	VERIFIER_TRAIN_THREADS=2 $(BIN)/python -m pytest specs/training -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check verifier api tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .verifier .pytest_cache .mypy_cache .ruff_cache
