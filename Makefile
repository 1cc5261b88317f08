# The study's front door. `make study` and `make test` each create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= data/demo

.PHONY: study test lint venv lab git-filter data features clean distclean

venv: $(STAMP) git-filter

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,cluster]'
	$(BIN)/python -m ipykernel install --sys-prefix --name caa-net-study --display-name "caa-net-study" >/dev/null
	@# kernels over IPC sockets, not unencrypted TCP (the venv's own Jupyter configuration)
	install -D -m 644 etc/jupyter_server_config.json $(VENV)/etc/jupyter/jupyter_server_config.json
	@$(MAKE) --no-print-directory git-filter
	@touch $(STAMP)

## git-filter: nbstripout as this checkout's git filter, so notebooks are committed without
## outputs (nor the interpreter's version, which JupyterLab writes into every notebook it
## saves), whatever JupyterLab saved; idempotent, and does nothing outside a git checkout
NBSTRIPOUT_EXTRA_KEYS := metadata.language_info.version
git-filter:
	@if [ -x $(BIN)/nbstripout ] && \
	    [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$(CURDIR)" ]; then \
	  $(BIN)/nbstripout --install --attributes .gitattributes && \
	  git config filter.nbstripout.extrakeys "$(NBSTRIPOUT_EXTRA_KEYS)"; fi

## make study: synthesise the demo dataset and run the whole study headless on CPU
study: $(STAMP)
	$(BIN)/caa synth $(DATA) --profile demo --layout dcase2018 --seed 0 --skip-existing
	$(BIN)/caa study --profile demo --data $(DATA)

## make test: the test suite (tiny profile, CPU)
test: $(STAMP)
	$(BIN)/python -m pytest -q

## make lab: JupyterLab at the project root, opened on the study's landing page
LAB_FLAGS ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: $(STAMP) git-filter
	$(BIN)/python -m caalib.landing .
	$(BIN)/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/index.ipynb \
	  $(ROOT_FLAG) $(LAB_FLAGS)

lint: $(STAMP)
	$(BIN)/ruff check caalib tests benchmarks

clean:
	rm -rf results/runs results/notebooks results/tables results/bench figures/*.png figures/*.pdf figures/*.csv

distclean: clean
	rm -rf $(VENV) data
