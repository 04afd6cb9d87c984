# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

# A short federated simulation on the embedded synthetic log: 4 partners (the generator's
# platforms), SecAgg+ on, beside centralized and local-only training; prints the side-by-side table.
demo: $(STAMP)
	$(BIN)/fedpath simulate rounds=8 local_epochs=2 model.epochs=8 data.n_sessions=1000

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/core_models.py

clean:
	rm -rf $(VENV) runs outputs multirun
