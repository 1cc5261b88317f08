# The study's front door. `make study` and `make test` each create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= data/demo

.PHONY: study test lint venv data features clean distclean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,cluster]'
	$(BIN)/python -m ipykernel install --sys-prefix --name caa-net-study --display-name "caa-net-study" >/dev/null
	@touch $(STAMP)

## make study: synthesise the demo dataset and run the whole study headless on CPU
study: $(STAMP)
	$(BIN)/caa synth $(DATA) --profile demo --layout dcase2018 --seed 0 --skip-existing
	$(BIN)/caa study --profile demo --data $(DATA)

## make test: the test suite (tiny profile, CPU)
test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check caalib tests benchmarks

clean:
	rm -rf results/runs results/notebooks results/tables results/bench figures/*.png figures/*.pdf figures/*.csv

distclean: clean
	rm -rf $(VENV) data
