# rankrobust: every target builds the .venv it needs.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel of torch 2.13.0 lies on this machine kind's disk; a looser pin pulls a multi-GB
# CUDA build. Elsewhere override, e.g. `make test TORCH_SPEC='torch==2.5.1'`.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_ARGS ?= --scale small --dataset mnist5k

.PHONY: venv dev demo test lint typecheck bench clean

$(VENV)/.base-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet -e . "$(TORCH_SPEC)"
	touch $@

$(VENV)/.dev-installed: $(VENV)/.base-installed pyproject.toml
	# every extra (ray, mlflow) so the tests that need them run; torch stays at TORCH_SPEC
	$(PIP) install --quiet -e ".[dev,ray,mlflow]" "$(TORCH_SPEC)"
	# torchattacks declares torchvision but never imports it; --no-deps keeps torchvision out.
	$(PIP) install --quiet --no-deps "torchattacks==3.5.1"
	touch $@

venv: $(VENV)/.base-installed
dev: $(VENV)/.dev-installed

demo: $(VENV)/.base-installed
	$(VENV)/bin/rankrobust reproduce $(DEMO_ARGS) --out runs/demo

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check src tests benchmarks

typecheck: $(VENV)/.dev-installed
	$(VENV)/bin/mypy src

test: $(VENV)/.dev-installed lint typecheck
	$(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info

# Structure benchmark: weightwatcher lives in its own venv only (never a project dependency).
WW_VENV ?= benchmarks/.venv-ww
$(WW_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(WW_VENV)
	$(WW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(WW_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(WW_VENV)/bin/python -m pip install --quiet -e . "$(TORCH_SPEC)"
	-$(WW_VENV)/bin/python -m pip install --quiet weightwatcher "$(TORCH_SPEC)"
	touch $@

.PHONY: bench-structure
bench-structure: $(WW_VENV)/.installed
	$(WW_VENV)/bin/python benchmarks/bench_structure.py
