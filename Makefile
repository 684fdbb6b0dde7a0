# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
BROWSER_STAMP := $(VENV)/.browser-stamp
PIP    := $(BIN)/python -m pip install --quiet --constraint constraints.txt

export KERAS_BACKEND := torch

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) --editable '.[all,dev]'
	touch $(STAMP)

# The report test renders report.html in headless Chromium (Debian packages). Installed when missing and
# we may (root with apt-get, as on CI); otherwise that one test is skipped with a note.
$(BROWSER_STAMP): | $(STAMP)
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium + chromium-driver for the report test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "warning: could not install chromium; the report's browser test will be skipped"; \
	  else echo "note: chromium not found; the report's browser test will be skipped"; fi; fi
	touch $@

# The statistics of the bundled digits data, then a comparison of five normalizations on it (25 short
# runs, under a minute on two cores). Run again, it resumes the same folder and only rebuilds the report.
demo: $(STAMP)
	$(BIN)/normlab stats digits
	$(BIN)/normlab compare --out runs/demo

test: $(STAMP) $(BROWSER_STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_stats.py

clean:
	rm -rf $(VENV) build dist .pytest_cache
