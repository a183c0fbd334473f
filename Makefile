# stag: `make test` and `make demo` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch first: 2.13.0 is a CPU wheel on this machine's disk; an unpinned torch
# would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0
# face-alignment (optional landmark backend) depends on opencv-python, which
# would replace our single OpenCV wheel: install it without dependencies.
FAN    := face-alignment==1.5.0

.PHONY: install lint test test-fast demo clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q -c constraints.txt numba
	$(BIN)/pip install -q --no-deps $(FAN)
	$(BIN)/python -m stag_features.install_check
	touch $(STAMP)

# the layering contracts and the lint rules of pyproject.toml, then the tests
lint: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

clean-venv:
	rm -rf $(VENV)

# The main job on the embedded sample: ingest the synthetic demo dataset
# (generated on first use, needs nothing outside the project), then fit STAG
# under leave-one-subject-out and print the metric table.
demo: install
	$(BIN)/stag-ingest --catalog data_catalog.yaml --dataset demo
	$(BIN)/stag-fit --store stores/demo.zarr --scheme demo --protocol loso --epochs 15 --seeds 1 --out runs/demo --overwrite
