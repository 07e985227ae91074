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
# Scenarios whose samples include a drill task ledger (the review notebook's sample event).
DRILL_SCENARIOS := july-rainstorm
export MPLBACKEND := agg

.PHONY: demo test install kernel browser cf-tools samples lint unit nbval bench clean

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

# Headless Chromium and CJK fonts for the rendering tests (Debian packages; needs root).
# Without them those tests skip with the reason; nothing else depends on a browser.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and fonts-noto-cjk (Debian)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null) \
	    || echo "warning: could not install chromium; browser tests will skip"; \
	else echo "note: chromium absent and not root; browser tests will skip"; fi

# The UDUNITS-2 C library for cfchecker (tests/test_cf_conformance.py; Debian package, needs
# root). Without it those tests skip with the reason.
cf-tools:
	@if ldconfig -p 2>/dev/null | grep -q libudunits2; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing libudunits2-0 (Debian)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libudunits2-0 >/dev/null) \
	    || echo "warning: could not install libudunits2-0; CF checker tests will skip"; \
	else echo "note: libudunits2 absent and not root; CF checker tests will skip"; fi

$(SAMPLES)/%.nc: $(STAMP) cityops/scenarios/*.py cityops/data/variables.yaml cityops/rules/drought.py cityops/review/drill.py cityops/data/drill.yaml
	@mkdir -p $(SAMPLES)
	$(BIN)/cityops -q scenario $* --out $@ --observed $(SAMPLES)/$*.observed.nc --history $(SAMPLES)/$*.history.nc \
	  $(if $(filter $*,$(DRILL_SCENARIOS)),--ledger $(SAMPLES)/$*.ledger.sqlite)

samples: $(addprefix $(SAMPLES)/,$(addsuffix .nc,$(SCENARIOS)))

demo: kernel samples
	$(BIN)/cityops brief $(SAMPLES)/$(DEMO_SCENARIO).nc --history $(SAMPLES)/$(DEMO_SCENARIO).history.nc --out out/briefing/$(DEMO_SCENARIO) --jobs 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(STAMP) kernel samples browser cf-tools
	$(BIN)/pytest -n 2 -q tests

nbval: $(STAMP) kernel samples
	$(BIN)/pytest -q --nbval-lax --nbval-current-env templates notebooks tests/notebooks

test: lint unit nbval

bench: $(STAMP) samples
	$(BIN)/python benchmarks/run.py

# Version floors: a separate venv with every direct dependency at the lowest version
# pyproject.toml allows (uv --resolution lowest-direct; ci/lowest-constraints.txt holds back
# transitive packages newer than those floors), then a smoke subset of the unit tests that
# exercises numpy/pandas/xarray/dask/netCDF4/pint/metpy/scipy/scores/shapely/pyproj/matplotlib.
# Needs no samples, kernel or browser. Rebuilt from scratch each run, so a stale venv cannot
# keep newer versions. Deselected: tests of things outside the installed package that need
# newer versions than the runtime floors (tests/test_drought.py uses Dataset.drop_attrs,
# xarray > 2024.6; tools/build_approximate_units.py uses shapely.orient_polygons, shapely 2.1)
# and one that needs the Jupyter kernel.
LOWEST := .venv-lowest
LOWEST_TESTS := tests/test_rules.py tests/test_ingest.py tests/test_risk.py tests/test_masks.py \
  tests/test_exposure.py tests/test_unit_levels.py tests/test_review_verification.py \
  tests/test_drought.py tests/test_trigger_semantics.py tests/test_jurisdiction.py \
  tests/test_plots.py tests/test_cap.py tests/test_calendar.py tests/test_scenarios.py
LOWEST_DESELECT := \
  --deselect tests/test_drought.py::test_synthetic_history_is_deterministic \
  --deselect tests/test_jurisdiction.py::test_build_script_is_reproducible \
  --deselect tests/test_unit_levels.py::test_unit_without_any_location_never_reads_as_safe

.PHONY: lowest
lowest:
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install -q uv
	$(LOWEST)/bin/uv pip install -q --python $(LOWEST)/bin/python --resolution lowest-direct \
	  -c ci/lowest-constraints.txt -e ".[test]"
	$(LOWEST)/bin/pytest -q -x -n 2 -p no:cacheprovider $(LOWEST_DESELECT) -k "not slow" $(LOWEST_TESTS)

clean:
	rm -rf out $(SAMPLES) .pytest_cache
