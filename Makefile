# Two commands do all set-up on a fresh machine with Python 3.11:
#   make demo   - the main job on the shipped sample (prints the path of index.html)
#   make test   - lint, unit tests, nbval on the templates and notebooks
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cityops-installed
SCENARIOS := quiet-day july-rainstorm january-blizzard spring-gale summer-heatwave autumn-fog 2022-08-ejin-horo-extreme-rain
SAMPLES := data/samples
DEMO_SCENARIO ?= july-rainstorm
export MPLBACKEND := agg

.PHONY: demo test install kernel samples lint unit nbval bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $@

install: $(STAMP)

kernel: $(STAMP)
	@$(BIN)/python -m cityops.report.kernel cityops >/dev/null
	@echo "Jupyter kernel 'cityops' registered in $(VENV)"

$(SAMPLES)/%.nc: $(STAMP) cityops/scenarios/*.py cityops/rules/drought.py
	@mkdir -p $(SAMPLES)
	$(BIN)/cityops -q scenario $* --out $@ --observed $(SAMPLES)/$*.observed.nc --history $(SAMPLES)/$*.history.nc

samples: $(addprefix $(SAMPLES)/,$(addsuffix .nc,$(SCENARIOS)))

demo: kernel samples
	$(BIN)/cityops brief $(SAMPLES)/$(DEMO_SCENARIO).nc --history $(SAMPLES)/$(DEMO_SCENARIO).history.nc --out out/briefing/$(DEMO_SCENARIO) --jobs 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(STAMP) kernel samples
	$(BIN)/pytest -n 2 -q tests

nbval: $(STAMP) kernel samples
	$(BIN)/pytest -q --nbval-lax --nbval-current-env templates notebooks

test: lint unit nbval

bench: $(STAMP) samples
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf out $(SAMPLES) .pytest_cache
