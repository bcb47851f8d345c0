# Two commands do everything: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow fuzz lint bench report-png clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# March 2020 on the default (census) market: the reports and report.html in reports/demo.
demo: $(STAMP)
	$(BIN)/forced-flow run march_2020 --out reports/demo --html

# Tests run in parallel processes (pytest-xdist), one per core up to four.
PYTEST := $(BIN)/python -m pytest -q -n auto --maxprocesses=4

test: $(STAMP)
	$(BIN)/ruff check .
	$(PYTEST)

# The end-to-end cases too many for `make test` (the whole bad-input corpus); CI runs them too.
test-slow: $(STAMP)
	$(PYTEST) -m slow

# Property tests with fresh random examples (`make test` replays a fixed, derandomised set).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/test_properties.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m estimator.bench

# The demo's HTML report rendered by headless Chromium, to check by eye how it looks.
report-png: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/forced-flow report march_2020 --out reports/demo
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,6000 \
		--screenshot=$(CURDIR)/reports/report.png file://$(CURDIR)/reports/demo/report.html

clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache .hypothesis
