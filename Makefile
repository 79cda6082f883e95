VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs bench soak clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m examples.quickstart

lint: $(STAMP)
	$(VENV)/bin/ruff check pigeon tests benchmarks examples reliability
	$(VENV)/bin/ruff format --check pigeon tests benchmarks examples reliability
	$(VENV)/bin/mypy --strict pigeon

test: lint
	$(VENV)/bin/pytest -n 4 --dist loadgroup

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m benchmarks.run

soak: $(STAMP)
	$(PY) -m reliability

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache site
