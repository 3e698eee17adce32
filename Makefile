# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: run test lint bench install-gpu clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

## make run: create .venv, install the requirements, start the app on the bundled demo
run: $(VENV)/.installed
	@./tools/system_deps.sh
	$(PY) main.py $(ARGS)

## make test: install the test requirements (and Xvfb) and run the whole suite
test: $(VENV)/.installed-dev
	@./tools/system_deps.sh
	$(PY) -m ruff check .
	xvfb-run -a -s "-screen 0 1920x1080x24" $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .
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
