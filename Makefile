# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: run test test-fast system-deps lint bench install-gpu clean
XVFB := xvfb-run -a -s "-screen 0 1920x1080x24"

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

## system packages first (seconds), so a missing one is said before the long pip install
system-deps:
	@./tools/system_deps.sh

## make run: create .venv, install the requirements, start the app on the bundled demo.
## Without a display it says so and runs on a virtual screen (Xvfb).
run: system-deps $(VENV)/.installed
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		$(PY) main.py $(ARGS); \
	else \
		echo "make run: no display (DISPLAY is not set). Running on a virtual screen (Xvfb): no window will"; \
		echo "  appear here. On a desktop, run 'make run' there; over ssh use 'ssh -X'; to look at the demo"; \
		echo "  from here: make run ARGS='--screenshot out/demo.png --frames 30' (then open out/demo.png)."; \
		mkdir -p out; $(XVFB) $(PY) main.py $(ARGS); \
	fi

## make test: install the test requirements (and Xvfb), check the code (ruff lint and format,
## mypy on every package) and run the whole suite
test: system-deps $(VENV)/.installed-dev lint
	@./tools/system_deps.sh --tests
	$(XVFB) $(PY) -m pytest $(PYTEST_ARGS)

## make test-fast: for day-to-day work, the checks and the quick part of the suite (about a minute:
## no GUI, none of the tests marked slow); make test stays the whole suite
test-fast: system-deps $(VENV)/.installed-dev lint
	$(PY) -m pytest -m "not gui and not slow" $(PYTEST_ARGS)

## make lint: ruff (lint and format check) and mypy, as make test runs them
lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## make install-gpu: on an NVIDIA machine, add TensorRT, pycuda and onnxruntime-gpu (which
## replaces the CPU onnxruntime: both own the onnxruntime module), then self-test every backend
install-gpu: $(VENV)/.installed
	$(PIP) uninstall --yes --quiet onnxruntime
	$(PIP) install -r requirements-gpu.txt
	$(PY) -m engine.backends --check

bench: $(VENV)/.installed
	$(PY) -m engine.benchmark --frames 60 --json out/bench.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
