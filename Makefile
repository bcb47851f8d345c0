# Two commands do everything: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow test-slow-short fuzz lint bench backtest backtest-readme golden-record golden-check report-png lock upgrade clean

# The environment is the lock's: every package at its pinned version, checked against its hashes
# (pip resolves nothing), then this project on top without a build backend of its own.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

# The lock from pyproject.toml: new or changed requirements resolved, every other pin kept
# (`make upgrade`: every package to its newest allowed version); then the tests on the result.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	--generate-hashes --quiet --custom-compile-command "make lock" -o requirements.lock

lock: $(STAMP)
	$(UV_COMPILE)
	$(MAKE) test

upgrade: $(STAMP)
	$(UV_COMPILE) --upgrade
	$(MAKE) test

# March 2020 day by day on the census of December 2019 (20 February – 31 March, every daily
# move sourced): the reports, the daily profile and report.html in reports/demo.
demo: $(STAMP)
	$(BIN)/forced-flow run march_2020_path --out reports/demo --html

# Tests run in parallel processes (pytest-xdist), one per core up to four.
PYTEST := $(BIN)/python -m pytest -q -n auto --maxprocesses=4

test: $(STAMP)
	$(BIN)/ruff check .
	$(PYTEST)

# The end-to-end cases too many for `make test`: the whole bad-input corpus and the shipped
# episodes run again against the backtest; `test-slow-short` leaves the episodes out. CI runs
# as many of them as its time allows (.ci/run).
test-slow: $(STAMP)
	$(PYTEST) -m slow

test-slow-short: $(STAMP)
	$(PYTEST) -m "slow and not episode"

# Property tests with fresh random examples (`make test` replays a fixed, derandomised set).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/test_properties.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Every figure beside its baseline in the same run: bench/latest.json and the README's table.
bench: $(STAMP)
	$(BIN)/python -m estimator.bench --readme

# Every episode's estimates beside the published figures (reports/backtest/).
backtest: $(STAMP)
	$(BIN)/forced-flow backtest --out reports/backtest

# The backtest kept as backtest/latest.csv and written into the README's table.
backtest-readme: $(STAMP)
	$(BIN)/python -m estimator.backtest

# Every shipped scenario's reports under every execution style, kept by hash (golden-record)
# and checked byte for byte (golden-check) while the machine is reshaped.
GOLDEN ?= reports/golden
golden-record: $(STAMP)
	$(BIN)/python tools/golden_reports.py record $(GOLDEN)
golden-check: $(STAMP)
	$(BIN)/python tools/golden_reports.py check $(GOLDEN)

# The demo's HTML report rendered by headless Chromium, to check by eye how it looks.
report-png: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/forced-flow report march_2020 --out reports/demo
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,6000 \
		--screenshot=$(CURDIR)/reports/report.png file://$(CURDIR)/reports/demo/report.html

clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache .hypothesis
