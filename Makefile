# Two commands: `make demo` and `make test`. Each bootstraps itself from python3 and make:
# it creates .venv, gets uv if it is missing, and installs exactly what uv.lock pins.

PYTHON ?= python3
VENV := .venv
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := .tools/bin/uv
endif

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export UV_PYTHON_DOWNLOADS := never
# Compile every package's bytecode at install: where Python may not write __pycache__ (a read-only install,
# PYTHONDONTWRITEBYTECODE) each command would otherwise recompile torch, scipy and pandas on import.
export UV_COMPILE_BYTECODE := 1
# Use the platform certificate store, so uv works behind a station proxy with its own CA.
export UV_SYSTEM_CERTS := 1
export UV_NATIVE_TLS := 1

.PHONY: demo test lint install clean

demo: $(VENV)/.synced
	$(VENV)/bin/breedwatch demo

test: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

install: $(VENV)/.synced

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

clean:
	rm -rf $(VENV) .tools .pytest_cache
