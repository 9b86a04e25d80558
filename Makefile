# Two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is not pinned in the package metadata; this is the release the project is tested with.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test lint format docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e ".[test,train,docs,bench,demo,export]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/bavae sample -n 64 -o grid.png --seed 0
	@echo "wrote grid.png (64 samples of the bundled default model)"

# Two workers (pytest-xdist) for the 2 cores: a file's tests together, but for the long files tests/conftest.py
# spreads test by test; then the timing tests alone, on a quiet machine, since they compare wall times.
test: install
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=10 -m "not timing" tests
	$(PY) -m pytest -q -p no:cacheprovider -m timing tests

# The same checks tests/test_layers.py runs inside `make test`, on their own and quicker.
lint: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) build dist *.egg-info site grid.png
